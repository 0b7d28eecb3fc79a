import Foundation
import GantryProtocol
import HTTPTypes
import Hummingbird
import NIOPosix

/// `PUT /v1/pipelines/{id}/keep` (`gantry keep PIPELINE`) and `DELETE` (`--remove`), and
/// what the pipeline and log views say of retention.
extension APIRouter {
    static func addRetentionRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let audit = dependencies.audit
        let core = dependencies.core
        for (route, kept) in [(APIRoute.keepPipeline, true), (.unkeepPipeline, false)] {
            router.on(route, audit: audit) { _, context -> Response in
                let id = try context.parameter("id")
                guard let store = core.store as? any RetentionStore else {
                    return APIResponses.error(.serviceUnavailable, code: "unavailable", message: "this coordinator's store keeps no pipelines")
                }
                let found = try await NIOThreadPool.singleton.runIfActive { try store.setKept(pipelineID: id, kept) }
                guard found, var pipeline = try await core.pipeline(id: id) else {
                    return APIResponses.error(.notFound, code: "not_found", message: "no pipeline \(id.logSafe(maximum: 128))")
                }
                pipeline.kept = kept ? true : nil
                return APIResponses.json(pipeline)
            }
        }
    }

    /// `true` for a kept pipeline, nil otherwise (and for a store without retention).
    static func keptMark(_ id: String, core: CoordinatorCore) async throws -> Bool? {
        guard let store = core.store as? any RetentionStore else { return nil }
        let marks = try await NIOThreadPool.singleton.runIfActive { try store.retentionMarks(pipelineID: id) }
        return marks?.kept == true ? true : nil
    }

    /// 410 for a finished job whose pipeline's logs retention removed (and that has not
    /// run again since): a clear answer rather than an empty log that looks like a step
    /// that printed nothing.
    static func logRemoved(_ job: StoredJob, core: CoordinatorCore) async throws -> Response? {
        guard job.state.isTerminal, let store = core.store as? any RetentionStore else { return nil }
        let pipelineID = job.pipelineId
        guard let removedAt = try await NIOThreadPool.singleton.runIfActive({ try store.retentionMarks(pipelineID: pipelineID) })?.logsRemovedAt,
            // A job retried after the collection has its new attempt's log.
            job.finishedAt.map({ $0 <= removedAt }) ?? true
        else { return nil }
        return APIResponses.error(
            .gone, code: "log_removed",
            message: "the log of job \(job.id) was removed on \(ISO8601DateFormatter().string(from: removedAt)) by the "
                + "coordinator's retention (`serve --retain-logs-days`); `gantry keep PIPELINE` keeps a pipeline's logs")
    }
}
