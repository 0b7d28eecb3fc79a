import Foundation
import GantryProtocol
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// The HTTP JSON API. Every route is a case of `APIRoute` (GantryProtocol), which declares
/// its method, path, permission and audit action in one place; handlers are registered
/// only through `Router.on(_:audit:_:)`, which authorizes and audits them.
///
/// - `POST /v1/pipelines` — body `API.SubmitPipeline`; 201 with `API.Pipeline`, 422 with
///   file/line/column for an invalid pipeline (nothing is queued).
/// - `GET /v1/pipelines[?state=&branch=&repository=&limit=&cursor=]` — `API.PipelineList`.
/// - `GET /v1/pipelines/{id}`, `GET /v1/jobs[?state=a,b&limit=n&cursor=]`, `GET /v1/jobs/{id}`,
///   `GET /v1/agents`.
/// - `GET /v1/jobs/{id}/log[?follow=1|attempt=N][&offset=N]` — the current attempt's log (or
///   attempt N's) as plain text; with `follow`, new output streams until the job ends. With
///   `offset` (0 ≤ N ≤ the attempt's stored length, else 400) it starts at that byte and
///   stays on that attempt (see `LogReader`); the `Gantry-Log-Attempt` header names it.
/// - `GET /v1/jobs/{id}/attempts` — every lease of the job and how it ended.
/// - `POST /v1/jobs/{id}/cancel`, `POST /v1/pipelines/{id}/cancel` — 202 with the job or
///   pipeline; a job an agent holds ends `cancelled` once the agent has stopped it.
/// - `GET /v1/demand?labels=k=v,...` — `API.Demand`: queued and running jobs that agents
///   with these labels could run, the oldest wait, and such agents by state.
/// - `GET /metrics` — Prometheus text: the same per job selector and agent label set.
/// - `POST/GET /v1/notifications`, `DELETE /v1/notifications/{id}`,
///   `GET /v1/notifications/{id}/deliveries`: outgoing webhooks (Notifications/).
/// - identities, tokens, secrets, audit, agents: see `APIRoute` and docs/security.md.
/// - `GET /v1/openapi.json` — all of it, in OpenAPI 3.1 (docs/openapi.json).
public enum APIRouter {
    public static let maximumPipelineSize = 1024 * 1024

    /// What the routes act on besides the core.
    public struct Dependencies: Sendable {
        public var core: CoordinatorCore
        public var authenticator: Authenticator
        public var identities: any IdentityStore
        public var audit: AuditLog
        public var revocation: AgentRevocation
        public var deployPolicy: DeployPolicy
        /// Pipeline meta-data; nil uses the core's store when it is one (`SQLiteStore`).
        public var metaData: (any MetaDataStore)?
        /// Artifacts and caches (Artifacts/); nil answers their routes with 503.
        public var artifacts: ArtifactService?
        /// Projects and webhook deliveries (Triggers/); nil uses the core's store when it
        /// is one (`SQLiteStore`).
        public var projects: (any ProjectStore)?
        /// The dashboard's sign-in sessions; nil when the dashboard is off.
        public var sessions: WebSessions?
        /// `serve --notification-allow-private`: notification URLs may name loopback and
        /// private addresses (Notifications/NotificationURL).
        public var notificationAllowPrivate = false

        public init(
            core: CoordinatorCore, authenticator: Authenticator, identities: any IdentityStore, audit: AuditLog,
            revocation: AgentRevocation, deployPolicy: DeployPolicy = DeployPolicy(), metaData: (any MetaDataStore)? = nil,
            artifacts: ArtifactService? = nil
        ) {
            self.artifacts = artifacts
            self.metaData = metaData
            self.deployPolicy = deployPolicy
            self.core = core
            self.authenticator = authenticator
            self.identities = identities
            self.audit = audit
            self.revocation = revocation
        }
    }

    public static func make(_ dependencies: Dependencies) -> Router<GantryRequestContext> {
        let router = Router(context: GantryRequestContext.self)
        // Outermost, so refused and unauthenticated requests are timed too.
        router.add(middleware: RequestMetricsMiddleware(metrics: dependencies.core.metrics))
        router.add(middleware: APIErrorMiddleware())
        router.add(
            middleware: AuthenticationMiddleware(
                authenticator: dependencies.authenticator, jobTokens: JobTokenAuthenticator(core: dependencies.core),
                sessions: dependencies.sessions))
        let core = dependencies.core
        let audit = dependencies.audit
        router.on(.health, audit: audit) { _, _ in Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n"))) }
        router.on(.openAPIDocument, audit: audit) { _, _ in OpenAPIDocument.response }
        addIdentityRoutes(to: router, dependencies)
        addAgentRoutes(to: router, dependencies)
        addAuditRoutes(to: router, dependencies)
        addSecretRoutes(to: router, dependencies)
        addMetaDataRoutes(to: router, dependencies)
        addPipelineUploadRoutes(to: router, dependencies)
        addArtifactRoutes(to: router, dependencies)
        addCacheRoutes(to: router, dependencies)
        addRetentionRoutes(to: router, dependencies)
        addProjectRoutes(to: router, dependencies)
        addWebhookRoutes(to: router, dependencies)
        addScheduleRoutes(to: router, dependencies)
        addDeploymentRoutes(to: router, dependencies)
        addDeliveryMetricsRoute(to: router, dependencies)
        addRollbackRoute(to: router, dependencies)
        addPipelineListRoute(to: router, dependencies)
        addJobListRoute(to: router, dependencies)
        addNotificationRoutes(to: router, dependencies)
        router.on(.submitPipeline, audit: audit) { request, context -> Response in
            let body: ByteBuffer
            switch await BoundedBody.collect(request, upTo: maximumPipelineSize, what: "the request body") {
            case .success(let collected): body = collected
            case .failure(let refusal): return refusal.response
            }
            let submission: API.SubmitPipeline
            do {
                submission = try API.decoder.decode(API.SubmitPipeline.self, from: Data(buffer: body))
            } catch {
                return APIResponses.error(
                    .badRequest, code: "bad_request",
                    message: "the body must be JSON like {\"yaml\": \"steps: ...\", \"file\": \"pipeline.yml\"}: \(error)")
            }
            do {
                let principal = context.principal!
                let policy = dependencies.deployPolicy
                let pipeline = try await core.submit(submission, submittedBy: principal.identity) {
                    try principal.checkMayDeploy($0, policy: policy)
                }
                context.audit.set(object: "pipeline:\(pipeline.id)")
                context.audit.add("jobs", String(pipeline.jobs.count))
                return APIResponses.json(pipeline, status: .created)
            } catch {
                guard let refused = SubmissionRefusal.response(for: error, audit: context.audit) else { throw error }
                return refused
            }
        }

        router.on(.getPipeline, audit: audit) { _, context -> Response in
            let id = try context.parameter("id")
            guard var pipeline = try await core.pipeline(id: id) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no pipeline \(id)")
            }
            pipeline.kept = try await keptMark(id, core: core)
            return APIResponses.json(pipeline)
        }

        router.on(.getJob, audit: audit) { _, context -> Response in
            let id = try context.parameter("id")
            guard let job = try await core.job(id: id) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no job \(id)")
            }
            return APIResponses.json(CoordinatorCore.view(job))
        }

        router.on(.jobAttempts, audit: audit) { _, context -> Response in
            let id = try context.parameter("id")
            guard try await core.job(id: id) != nil else {
                return APIResponses.error(.notFound, code: "not_found", message: "no job \(id)")
            }
            return APIResponses.json(
                try core.store.attempts(jobID: id).map {
                    API.Attempt(
                        attempt: $0.attempt, agentId: $0.agentId, state: $0.state.rawValue, exitStatus: $0.exitStatus,
                        reason: $0.reason, leasedAt: $0.leasedAt, startedAt: $0.startedAt, finishedAt: $0.finishedAt)
                })
        }

        router.on(.cancelJob, audit: audit) { _, context -> Response in
            let id = try context.parameter("id")
            guard let job = try await core.cancel(jobID: id) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no job \(id)")
            }
            return APIResponses.json(job, status: .accepted)
        }

        router.on(.cancelPipeline, audit: audit) { _, context -> Response in
            let id = try context.parameter("id")
            guard let pipeline = try await core.cancel(pipelineID: id) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no pipeline \(id)")
            }
            return APIResponses.json(pipeline, status: .accepted)
        }

        addRerunRoutes(to: router, dependencies)
        addApprovalRoutes(to: router, dependencies)

        router.on(.listAgents, audit: audit) { request, _ -> Response in
            switch WholeListPage.query(request.uri.queryParameters) {
            case .failure(let refusal): return APIResponses.error(.badRequest, code: "bad_request", message: refusal.text)
            case .success(let query):
                return WholeListPage.response(await core.listAgents(), key: \.id, view: { $0 }, query, route: .listAgents)
            }
        }

        router.on(.demand, audit: audit) { request, _ -> Response in
            switch LabelSet.parse(request.uri.queryParameters.get("labels") ?? "") {
            case .failure(let error):
                return APIResponses.error(.badRequest, code: "bad_request", message: "?labels=: \(error)")
            case .success(let labels):
                return APIResponses.json(await core.demandView(forAgentLabels: labels))
            }
        }

        router.on(.metrics, audit: audit) { _, _ -> Response in
            // Environment names are checked at parse time (letters, digits, `.`, `_`, `-`), so
            // they need no escaping as label values.
            let text = core.metrics.render(await core.scalingSnapshot())
                + Array(deliveryMetricsText(core.store as? any DeploymentStore).utf8)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }

        router.on(.jobLog, audit: audit) { request, context -> Response in
            let id = try context.parameter("id")
            guard let job = try await core.job(id: id) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no job \(id)")
            }
            if let gone = try await logRemoved(job, core: core) { return gone }
            let follow = ["1", "true", "yes"].contains(request.uri.queryParameters.get("follow") ?? "")
            let attempt = request.uri.queryParameters.get("attempt").flatMap { Int($0) }
            var offset: Int?
            if let text = request.uri.queryParameters.get("offset") {
                let served = attempt ?? job.attempt
                guard text.utf8.count <= 19, text.utf8.allSatisfy({ (48...57).contains($0) }), let value = Int(text),
                    try LogReader.offsetIsValid(value, core: core, jobID: id, attempt: served)
                else {
                    return APIResponses.error(
                        .badRequest, code: "bad_request",
                        message: "?offset= must be a byte offset from 0 to the length of attempt \(served)'s log")
                }
                offset = value
            }
            let streamer = LogReader(
                core: core, jobID: id, follow: follow && (attempt == nil || offset != nil), attempt: offset == nil ? attempt : attempt ?? job.attempt,
                offset: offset)
            var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
            if let name = HTTPField.Name("Gantry-Log-Attempt") { headers[name] = String(attempt ?? job.attempt) }
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody { writer in
                    try await streamer.stream { try await writer.write($0) }
                    try await writer.finish(nil)
                })
        }
        return router
    }
}
