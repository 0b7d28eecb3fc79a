import Foundation
import GantryProtocol
import Hummingbird
import NIOCore

/// `POST /v1/pipelines/{id}/approve|reject`: a person decides a `block:` step.
extension APIRouter {
    /// Largest decision body: 20 fields of at most 64 KiB each, and a reason.
    static let maximumDecisionBody = 21 * 64 * 1024 + 4096
    /// Longest reason: one line, shown in the job and the audit log.
    static let maximumReasonBytes = 1024

    static func addApprovalRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        for (route, approved) in [(APIRoute.approvePipeline, true), (.rejectPipeline, false)] {
            router.on(route, audit: dependencies.audit) { request, context -> Response in
                try await decide(request, context, approved: approved, core: dependencies.core)
            }
        }
    }

    private static func decide(
        _ request: Request, _ context: GantryRequestContext, approved: Bool, core: CoordinatorCore
    ) async throws -> Response {
        let pipelineID = try context.parameter("id")
        context.audit.set(object: "pipeline:\(pipelineID)")
        guard let principal = context.principal else {
            return APIResponses.error(.unauthorized, code: "unauthorized", message: "no principal")
        }
        var request = request
        let decision: API.BlockDecision
        do {
            let body = try await request.collectBody(upTo: maximumDecisionBody)
            decision = body.readableBytes == 0 ? API.BlockDecision() : try API.decoder.decode(API.BlockDecision.self, from: Data(buffer: body))
        } catch {
            return APIResponses.error(
                .badRequest, code: "bad_request",
                message: "the body must be JSON like {\"step\": \"approve\", \"fields\": {\"channel\": \"stable\"}, \"reason\": \"...\"}, "
                    + "at most \(maximumDecisionBody) bytes")
        }
        if let reason = decision.reason,
            reason.utf8.count > maximumReasonBytes || reason.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        {
            return APIResponses.error(
                .unprocessableContent, code: "invalid_decision",
                message: "`reason` must be one line of at most \(maximumReasonBytes) bytes")
        }
        if !approved, !(decision.fields ?? [:]).isEmpty {
            return APIResponses.error(.unprocessableContent, code: "invalid_decision", message: "a rejection takes no fields")
        }
        let job: StoredJob
        switch await core.blockedJob(pipelineID: pipelineID, step: decision.step) {
        case .failure(let refusal): return refusalResponse(refusal, pipelineID: pipelineID)
        case .success(let found): job = found
        }
        context.audit.add("step", job.key)
        guard let block = job.block, principal.mayDecide(block) else {
            context.audit.add("reason", "not allowed to decide")
            return APIResponses.error(
                .forbidden, code: "forbidden",
                message: "\(principal.identity) (\(principal.rolesDescription)) may not decide block `\(job.key)`: "
                    + whoMay(job.block))
        }
        var fields: [String: String] = [:]
        if approved {
            switch BlockFieldValues.resolve(block, given: decision.fields ?? [:]) {
            case .failure(let refusal): return refusalResponse(refusal, pipelineID: pipelineID)
            case .success(let values): fields = values
            }
            if !fields.isEmpty { context.audit.add("fields", fields.keys.sorted().joined(separator: ",")) }
        }
        if let reason = decision.reason { context.audit.add("why", reason) }
        switch try await core.decide(jobID: job.id, approved: approved, by: principal.identity, reason: decision.reason, fields: fields) {
        case .failure(let refusal): return refusalResponse(refusal, pipelineID: pipelineID)
        case .success(let decided): return APIResponses.json(decided)
        }
    }

    private static func whoMay(_ block: BlockStep?) -> String {
        guard let block, !(block.roles.isEmpty && block.identities.isEmpty) else {
            return "a block without `allowed:` is decided by whoever may deploy (deployer or admin)"
        }
        let roles = block.roles.isEmpty ? [] : ["roles \(block.roles.joined(separator: ", "))"]
        let names = block.identities.isEmpty ? [] : ["identities \(block.identities.joined(separator: ", "))"]
        return "it allows " + (roles + names).joined(separator: " and ")
    }

    private static func refusalResponse(_ refusal: BlockDecisionRefusal, pipelineID: String) -> Response {
        switch refusal {
        case .pipelineNotRunning, .nothingBlocked:
            return APIResponses.error(.conflict, code: "not_blocked", message: "pipeline \(pipelineID.logSafe(maximum: 64)): \(refusal)")
        case .ambiguous:
            return APIResponses.error(.conflict, code: "ambiguous", message: refusal.description)
        case .invalidFields:
            return APIResponses.error(.unprocessableContent, code: "invalid_fields", message: refusal.description)
        }
    }
}
