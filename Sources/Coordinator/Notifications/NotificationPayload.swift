import Foundation
import GantryProtocol

/// The JSON body of a notification (docs/operations.md, "Notifications"). Built once per
/// event and endpoint when the event is fanned out, so every attempt sends the same bytes.
/// A summary, not the pipeline: job counts by state instead of a job list, so a body stays
/// small however many jobs the pipeline has.
struct NotificationPayload: Encodable, Sendable {
    struct Pipeline: Encodable, Sendable {
        var id: String
        var state: String
        var repository: String
        var branch: String
        var commit: String
        var tag: String?
        var message: String?
        var source: String
        var createdAt: Date
        var finishedAt: Date?
        /// Jobs by state (`passed` jobs are `succeeded` here, as in the API).
        var jobs: [String: Int]
        /// The API path of the pipeline (`GET` it for the jobs).
        var path: String
    }

    struct Job: Encodable, Sendable {
        var id: String
        var key: String
        var name: String
        var state: String
        var outcome: String?
        var attempt: Int
        var exitStatus: Int?
        var agentId: String?
        var startedAt: Date?
        var finishedAt: Date?
    }

    struct Deployment: Encodable, Sendable {
        var environment: String
        var jobId: String
        var state: String
        var outcome: String?
    }

    /// Unique per event; the same for every endpoint the event goes to.
    var id: String
    var event: String
    var timestamp: Date
    var pipeline: Pipeline
    var job: Job?
    var deployment: Deployment?

    static func make(
        event: StoredNotificationEvent, eventID: String, pipeline: StoredPipeline, jobs: [StoredJob]
    ) -> NotificationPayload {
        let view = CoordinatorCore.view(pipeline, jobs: jobs)
        var counts: [String: Int] = [:]
        for job in jobs { counts[job.state.rawValue, default: 0] += 1 }
        let ended = jobs.allSatisfy(\.isTerminal)
        let summary = Pipeline(
            id: pipeline.id, state: view.state, repository: pipeline.repository, branch: pipeline.branch,
            commit: pipeline.commit, tag: pipeline.tag.isEmpty ? nil : pipeline.tag,
            message: pipeline.message.isEmpty ? nil : String(pipeline.message.prefix(1024)), source: pipeline.source,
            createdAt: pipeline.createdAt, finishedAt: ended ? jobs.compactMap(\.finishedAt).max() : nil, jobs: counts,
            path: APIRoute.getPipeline.path(["id": pipeline.id]))
        var payload = NotificationPayload(id: eventID, event: event.type, timestamp: event.occurredAt, pipeline: summary)
        if let jobID = event.jobId, let job = jobs.first(where: { $0.id == jobID }) {
            let api = CoordinatorCore.view(job)
            payload.job = Job(
                id: job.id, key: job.key, name: job.name, state: job.state.rawValue, outcome: api.outcome, attempt: job.attempt,
                exitStatus: job.exitStatus, agentId: job.agentId, startedAt: job.startedAt, finishedAt: job.finishedAt)
            if event.type == NotificationEventType.deploymentFinished.rawValue, let environment = job.environment {
                payload.deployment = Deployment(environment: environment, jobId: job.id, state: job.state.rawValue, outcome: api.outcome)
            }
        }
        return payload
    }
}
