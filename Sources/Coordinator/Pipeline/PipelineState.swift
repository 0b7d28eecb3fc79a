/// A pipeline's state, derived from its jobs': it has no column of its own, so it can
/// never disagree with them.
public enum PipelineState: String, Sendable, CaseIterable {
    case running, succeeded, failed, cancelled

    /// `running` while any job is unfinished; then `failed` if any job's outcome is
    /// failed, `cancelled` if any was cancelled, else `succeeded` (soft failures and
    /// skipped steps included).
    public static func derive(_ jobs: some Sequence<(state: JobState, outcome: JobOutcome?)>) -> PipelineState {
        var combined = JobOutcome.passed
        for job in jobs {
            guard job.state.isTerminal else { return .running }
            combined = combined.combined(with: job.outcome ?? JobOutcome(state: job.state))
        }
        switch combined {
        case .passed: return .succeeded
        case .failed: return .failed
        case .cancelled: return .cancelled
        }
    }
}
