import Foundation
import GantryProtocol
import Hummingbird

extension Router where Context == GantryRequestContext {
    /// Registers `handler` for `route`, behind the route's declared permission: the only
    /// way the API registers a handler, so no route exists without one.
    ///
    /// The caller's roles are checked before the handler runs (403 `forbidden` naming the
    /// permission and the roles held). For a route with an audit action, every call is
    /// recorded once after it ends, allowed or not, with its outcome.
    public func on(
        _ route: APIRoute, audit: AuditLog,
        _ handler: @escaping @Sendable (Request, GantryRequestContext) async throws -> Response
    ) {
        on(RouterPath(route.path), method: HTTPRequest.Method(route.method)!) { request, context -> Response in
            guard let permission = route.permission else { return try await handler(request, context) }
            guard let principal = context.principal else {
                // AuthenticationMiddleware answers 401 before this; never serve without one.
                return APIResponses.error(.unauthorized, code: "unauthorized", message: "authentication required")
            }
            if let job = principal.job {
                if let refusal = Self.jobTokenRefusal(route, job, context) {
                    if let action = route.auditAction {
                        audit.record(
                            AuditEvent(
                                actor: principal.identity, tokenID: principal.tokenID, address: context.remoteAddressText,
                                action: action, object: Self.object(route, context), outcome: "denied",
                                detail: ["reason": refusal]))
                    }
                    return APIResponses.error(.forbidden, code: "forbidden", message: refusal)
                }
            } else if !principal.allows(permission) {
                if let action = route.auditAction {
                    audit.record(
                        AuditEvent(
                            actor: principal.identity, tokenID: principal.tokenID, address: context.remoteAddressText,
                            action: action, object: Self.object(route, context), outcome: "denied",
                            detail: ["permission": permission.rawValue, "roles": principal.rolesDescription]))
                }
                return APIResponses.error(
                    .forbidden, code: "forbidden",
                    message: "\(principal.identity) (\(principal.rolesDescription)) may not \(route.method) \(route.path): "
                        + "it needs the '\(permission.rawValue)' permission (role \(permission.minimumRole.rawValue) or higher)")
            }
            guard let action = route.auditAction else { return try await handler(request, context) }
            let response: Response
            do {
                response = try await handler(request, context)
            } catch {
                // A thrown HTTPError below 500 is the caller's mistake (a path parameter
                // that does not decode), not the coordinator's failure.
                let status = (error as? HTTPError).map { Int($0.status.code) }
                let outcome = status.map { $0 < 500 ? "refused" : "failed" } ?? "failed"
                Self.record(audit, action, route, principal, context, outcome: outcome, status: status)
                throw error
            }
            let code = Int(response.status.code)
            let outcome = (200..<300).contains(code) ? "succeeded" : code == 403 ? "denied" : code < 500 ? "refused" : "failed"
            Self.record(audit, action, route, principal, context, outcome: outcome, status: code)
            return response
        }
    }

    /// Why a job token may not make this call, or nil: only a route declaring
    /// `jobTokenAllowed`, and only for what its `{id}` names when that is the job's own
    /// pipeline (`/v1/pipelines/{id}/…`) or its own job (`/v1/jobs/{id}/…`). An upload
    /// session (`/v1/artifact-uploads/{id}`) and a download by digest need a store read to
    /// decide, so their handlers check them (a session only of the token's job and
    /// attempt, a digest only of the job's pipeline or the one it promotes).
    static func jobTokenRefusal(_ route: APIRoute, _ job: Principal.JobGrant, _ context: GantryRequestContext) -> String? {
        guard route.jobTokenAllowed else {
            return "a job token may call only the meta-data, artifact and cache routes of its own job and pipeline, not "
                + "\(route.method) \(route.path): use an API token (--token / GANTRY_TOKEN) for anything else"
        }
        if route.path.hasPrefix("/v1/pipelines/{id}") {
            guard let pipeline = try? context.parameter("id"), pipeline == job.pipelineID else {
                return "the job token of job \(job.jobID) belongs to pipeline \(job.pipelineID); it may not reach another "
                    + "pipeline's meta-data or artifacts"
            }
        } else if route.path.hasPrefix("/v1/jobs/{id}") {
            guard let id = try? context.parameter("id"), id == job.jobID else {
                return "the job token of job \(job.jobID) (it belongs to pipeline \(job.pipelineID)) may reach only its own "
                    + "job's artifacts and caches, not another job's"
            }
        }
        return nil
    }

    private static func record(
        _ audit: AuditLog, _ action: String, _ route: APIRoute, _ principal: Principal, _ context: GantryRequestContext,
        outcome: String, status: Int?
    ) {
        var detail = context.audit.snapshot.detail
        if let status { detail["status"] = String(status) }
        audit.record(
            AuditEvent(
                actor: principal.identity, tokenID: principal.tokenID, address: context.remoteAddressText, action: action,
                object: object(route, context), outcome: outcome, detail: detail))
    }

    /// The object a handler named, else `kind:parameter` from the route's path (`job:ID`,
    /// `identity:NAME`, `agent:HOST/SLOT`), else the route's path.
    private static func object(_ route: APIRoute, _ context: GantryRequestContext) -> String {
        if let object = context.audit.snapshot.object { return object }
        let segments = route.path.split(separator: "/")
        let kind = segments.count > 1 ? String(segments[1].dropLast(segments[1].hasSuffix("s") ? 1 : 0)) : route.path
        if let host = try? context.parameter("host"), let slot = try? context.parameter("slot") { return "agent:\(host)/\(slot)" }
        if let name = try? context.parameter("name") { return "\(kind):\(name)" }
        if let id = try? context.parameter("id") { return "\(kind):\(id)" }
        return route.path
    }
}
