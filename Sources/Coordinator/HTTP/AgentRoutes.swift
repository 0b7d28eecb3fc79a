import Foundation
import GantryProtocol
import Hummingbird

extension APIRouter {
    /// `POST /v1/agents/{host}/{slot}/forget` and `…/drain` (admin). An agent id is
    /// `host/slot`, one path segment each.
    static func addAgentRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let audit = dependencies.audit
        let revocation = dependencies.revocation
        let core = dependencies.core

        router.on(.forgetAgent, audit: audit) { _, context -> Response in
            let agentID = try context.parameter("host") + "/" + context.parameter("slot")
            do {
                let forgotten = try await revocation.forget(agentID: agentID, by: context.principal!.identity)
                context.audit.set(object: "host:\(forgotten.host)")
                context.audit.add("certificates_revoked", String(forgotten.certificatesRevoked))
                context.audit.add("disconnected", forgotten.disconnected.joined(separator: ","))
                return APIResponses.json(
                    API.ForgottenAgent(
                        host: forgotten.host, certificatesRevoked: forgotten.certificatesRevoked,
                        disconnected: forgotten.disconnected))
            } catch AgentRevocation.Failure.badAgentID(let why) {
                return APIResponses.error(.badRequest, code: "bad_request", message: why)
            } catch {
                return APIResponses.error(.internalServerError, code: "internal", message: "\(error): nothing was revoked")
            }
        }

        router.on(.drainAgent, audit: audit) { _, context -> Response in
            let agentID = try context.parameter("host") + "/" + context.parameter("slot")
            guard await core.drain(agentID: agentID, reason: "drained by \(context.principal!.identity)") else {
                return APIResponses.error(.notFound, code: "not_found", message: "no agent \(agentID) is connected")
            }
            return APIResponses.json(API.DrainedAgent(agentId: agentID), status: .accepted)
        }
    }
}
