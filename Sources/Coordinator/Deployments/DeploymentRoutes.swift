import Foundation
import GantryProtocol
import Hummingbird
import Synchronization
import NIOCore
import NIOFoundationCompat

/// `GET /v1/deployments[?environment=NAME&project=P&limit=N&cursor=C]`: what was deployed
/// where, newest first, `limit` 1-500 (default 50), `next_cursor` continuing: the commit, the artifact digests, who approved the pipeline's blocks, the
/// result and duration (`gantry deployments [ENV]`). Read from the jobs, the artifact
/// downloads and the audit log on the request's task; nothing goes through the single
/// writer.
extension APIRouter {
    static let defaultDeploymentLimit = 50
    static let maximumDeploymentLimit = 500

    static func addDeploymentRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let core = dependencies.core
        let audit = dependencies.audit
        let store = core.store as? any DeploymentStore

        router.on(.listDeployments, audit: audit) { request, _ -> Response in
            guard let store else {
                return APIResponses.error(.serviceUnavailable, code: "unavailable", message: "this coordinator keeps no deployments")
            }
            let environment = request.uri.queryParameters.get("environment").map { String($0) }
            if let environment, environment.isEmpty || environment.utf8.count > 63 {
                return APIResponses.error(.badRequest, code: "bad_request", message: "?environment= names 1-63 bytes")
            }
            let limitText = request.uri.queryParameters.get("limit")
            let limit = limitText.map { Int($0) } ?? defaultDeploymentLimit
            guard let limit, (1...maximumDeploymentLimit).contains(limit) else {
                return APIResponses.error(.badRequest, code: "bad_request", message: "?limit= is 1 to \(maximumDeploymentLimit)")
            }
            let project = request.uri.queryParameters.get("project").map { String($0) }
            if let project, !ProjectSettings.isValidName(project) {
                return APIResponses.error(.badRequest, code: "bad_request", message: "?project= is a project name")
            }
            var before: Int64?
            if let text = request.uri.queryParameters.get("cursor"), !text.isEmpty {
                guard text.hasPrefix("d"), text.utf8.count <= 20, let rowid = Int64(text.dropFirst()), rowid > 0 else {
                    return APIResponses.error(.badRequest, code: "bad_request", message: "?cursor= is not a cursor this API handed out")
                }
                before = rowid
            }
            // One more than asked tells whether another page exists.
            let found = try store.deploymentRows(environment: environment, project: project, since: nil, before: before, limit: limit + 1)
            let rows = Array(found.prefix(limit))
            var approvals: [String: [API.DeploymentApproval]] = [:]
            for pipeline in Set(rows.map(\.job.pipelineId)) {
                approvals[pipeline] = try approvalsOf(pipeline, audit: audit.store)
            }
            return APIResponses.json(
                API.DeploymentList(
                    deployments: rows.map { view($0, approvals: approvals[$0.job.pipelineId] ?? []) },
                    nextCursor: found.count > limit ? rows.last.map { "d\($0.rowid)" } : nil))
        }
    }

    static func addRollbackRoute(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let core = dependencies.core
        router.on(.rollbackEnvironment, audit: dependencies.audit) { request, context -> Response in
            guard let principal = context.principal else {
                return APIResponses.error(.unauthorized, code: "unauthorized", message: "no principal")
            }
            let environment = try context.parameter("name")
            context.audit.set(object: "environment:\(environment.logSafe(maximum: 63))")
            let body: ByteBuffer
            switch await BoundedBody.collect(request, upTo: 4096, what: "the request body") {
            case .success(let collected): body = collected
            case .failure(let refusal): return refusal.response
            }
            guard let rollback = try? API.decoder.decode(API.Rollback.self, from: Data(buffer: body)) else {
                return APIResponses.error(.badRequest, code: "bad_request", message: "the body must be JSON like {\"to\": \"DEPLOYMENT\"}")
            }
            context.audit.add("to", rollback.to.logSafe(maximum: 80))
            do {
                let policy = dependencies.deployPolicy
                switch try await core.rollback(
                    environment: environment, to: rollback.to, submittedBy: principal.identity,
                    permit: { try principal.checkMayDeploy($0, policy: policy) })
                {
                case .failure(let refusal):
                    context.audit.add("reason", refusal.description)
                    if case .notFound = refusal { return APIResponses.error(.notFound, code: "not_found", message: refusal.description) }
                    return APIResponses.error(.unprocessableContent, code: "not_a_rollback_target", message: refusal.description)
                case .success(let pipeline):
                    context.audit.add("pipeline", pipeline.id)
                    return APIResponses.json(pipeline, status: .created)
                }
            } catch {
                guard let refused = SubmissionRefusal.response(for: error, audit: context.audit) else { throw error }
                return refused
            }
        }
    }

    /// Longest window of `GET /v1/metrics/dora`, and the most deployments it reads.
    static let maximumMetricsDays = 366
    static let maximumMetricsDeployments = 100_000

    static func addDeliveryMetricsRoute(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let store = dependencies.core.store as? any DeploymentStore
        router.on(.deliveryMetrics, audit: dependencies.audit) { request, _ -> Response in
            guard let store else {
                return APIResponses.error(.serviceUnavailable, code: "unavailable", message: "this coordinator keeps no deployments")
            }
            let environment = request.uri.queryParameters.get("environment").map { String($0) }
            if let environment, environment.isEmpty || environment.utf8.count > 63 {
                return APIResponses.error(.badRequest, code: "bad_request", message: "?environment= names 1-63 bytes")
            }
            let days = request.uri.queryParameters.get("days").map { Int($0) } ?? 30
            guard let days, (1...maximumMetricsDays).contains(days) else {
                return APIResponses.error(.badRequest, code: "bad_request", message: "?days= is 1 to \(maximumMetricsDays)")
            }
            let project = request.uri.queryParameters.get("project").map { String($0) }
            if let project, !ProjectSettings.isValidName(project) {
                return APIResponses.error(.badRequest, code: "bad_request", message: "?project= is a project name")
            }
            let until = Date()
            let since = until.addingTimeInterval(-Double(days) * 86_400)
            let environments = try deliveryMetrics(store, environment: environment, project: project, since: since, until: until).map {
                API.EnvironmentMetrics(
                    environment: $0.name, deployments: $0.deployments, successes: $0.successes, failures: $0.failures,
                    deploymentsPerDay: $0.deploymentsPerDay, leadTimeMedianSeconds: $0.leadTimeMedian,
                    leadTimeP90Seconds: $0.leadTimeP90, changeFailureRate: $0.changeFailureRate,
                    timeToRestoreMedianSeconds: $0.timeToRestoreMedian, unrestoredFailures: $0.unrestoredFailures)
            }
            return APIResponses.json(API.DeliveryMetrics(since: since, until: until, environments: environments))
        }
    }

    /// The metrics of the deployments that finished in `[since, until]`.
    static func deliveryMetrics(
        _ store: any DeploymentStore, environment: String?, project: String? = nil, since: Date, until: Date
    ) throws -> [DeliveryMetrics.Environment] {
        let rows = try store.deploymentRows(environment: environment, project: project, since: since, limit: maximumMetricsDeployments)
        let events = rows.compactMap { row -> DeliveryMetrics.Event? in
            guard let finished = row.job.finishedAt, let environment = row.job.environment else { return nil }
            return DeliveryMetrics.Event(
                environment: environment, changeAt: row.pipelineCreatedAt, finishedAt: finished,
                succeeded: row.job.state == .succeeded, cancelled: row.job.state == .cancelled, rollback: row.source == "rollback")
        }
        return DeliveryMetrics.compute(events, since: since, until: until.addingTimeInterval(1))
    }

    /// The last 30 days' delivery metrics as Prometheus gauges, for `/metrics`: computed at
    /// most once a minute (a scrape every few seconds must not read every deployment each
    /// time), and empty where the coordinator keeps no deployments.
    static func deliveryMetricsText(_ store: (any DeploymentStore)?, now: Date = Date()) -> String {
        guard let store else { return "" }
        if let cached = deliveryMetricsCache.withLock({ $0 }), now.timeIntervalSince(cached.at) < 60 { return cached.text }
        guard let environments = try? deliveryMetrics(store, environment: nil, since: now.addingTimeInterval(-30 * 86_400), until: now)
        else { return "" }
        var text = ""
        func gauge(_ name: String, _ help: String, _ value: (DeliveryMetrics.Environment) -> Double?) {
            text += "# HELP gantry_dora_\(name) \(help) (last 30 days)\n# TYPE gantry_dora_\(name) gauge\n"
            for environment in environments {
                guard let value = value(environment) else { continue }
                text += "gantry_dora_\(name){environment=\"\(environment.name)\"} \(value)\n"
            }
        }
        gauge("deployments_per_day", "Successful deployments per day", \.deploymentsPerDay)
        gauge("lead_time_median_seconds", "Pipeline creation to successful deployment, median", \.leadTimeMedian)
        gauge("change_failure_rate", "Failed changes over finished deployments", \.changeFailureRate)
        gauge("time_to_restore_median_seconds", "Failed deployment to the next success, median", \.timeToRestoreMedian)
        gauge("unrestored_failures", "Failures not followed by a success", { Double($0.unrestoredFailures) })
        deliveryMetricsCache.withLock { $0 = (now, text) }
        return text
    }

    private static let deliveryMetricsCache = Mutex<(at: Date, text: String)?>(nil)

    /// The pipeline's blocks that were approved, from the audit log (who, which step,
    /// when): the record every decision leaves.
    static func approvalsOf(_ pipeline: String, audit: any AuditStore) throws -> [API.DeploymentApproval] {
        try audit.auditRecords(since: nil, actor: nil, object: "pipeline:\(pipeline)", afterSeq: nil, limit: 200)
            .filter { $0.action == "pipeline.approve" && $0.outcome == "succeeded" }
            .map { record in
                let detail = (try? JSONDecoder().decode([String: String].self, from: Data(record.detail.utf8))) ?? [:]
                return API.DeploymentApproval(step: detail["step"] ?? "", by: record.actor, at: record.at)
            }
    }

    static func view(_ row: DeploymentRow, approvals: [API.DeploymentApproval]) -> API.Deployment {
        let job = row.job
        var duration: Double?
        if let started = job.startedAt, let finished = job.finishedAt { duration = finished.timeIntervalSince(started) }
        return API.Deployment(
            id: job.id, environment: job.environment ?? "", pipelineId: job.pipelineId, step: job.key, state: job.state.rawValue,
            attempt: UInt32(clamping: job.attempt), repository: row.repository.isEmpty ? nil : row.repository,
            commit: row.commit.isEmpty ? nil : row.commit, branch: row.branch.isEmpty ? nil : row.branch,
            startedAt: job.startedAt, finishedAt: job.finishedAt, durationSeconds: duration, artifacts: row.artifacts,
            approvals: approvals)
    }
}
