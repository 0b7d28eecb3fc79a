/// The events an endpoint may subscribe to (`POST /v1/notifications` `events`).
///
/// `pipeline.started` is sent when a pipeline is accepted (its rows stored), which is when
/// CI systems report a build as started to a commit status; `deployment.finished` is a
/// job of a step with `environment:` that ended other than skipped.
public enum NotificationEventType: String, CaseIterable, Sendable, Codable {
    case pipelineStarted = "pipeline.started"
    case pipelineFinished = "pipeline.finished"
    case jobFinished = "job.finished"
    case deploymentFinished = "deployment.finished"
}
