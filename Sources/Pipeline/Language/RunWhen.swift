/// When a step runs, given how its dependencies ended (`when:`). The lifecycle decides once
/// every dependency has ended; docs/pipeline.md ("Failure handling") has the table.
public enum RunWhen: String, Sendable, Equatable, Codable, CaseIterable {
    /// The default: run if every dependency passed (succeeded, soft-failed or was skipped
    /// by its condition).
    case onSuccess = "on_success"
    /// Run only if a dependency failed (or did not run because something before it failed):
    /// rollback, notification.
    case onFailure = "on_failure"
    /// Run however the dependencies ended (cleanup), unless the pipeline was cancelled.
    case always
}
