import Foundation
import Synchronization

/// Stops a job's processes: SIGTERM to every process group the job started, then SIGKILL
/// after the grace period.
///
/// Each command runs in its own session, so its own process group led by the shell;
/// signalling `-pgid` reaches every process that stayed in the group, including ones whose
/// leader already exited (a background child that closed its output keeps the group
/// alive). Groups are remembered for the whole job, so the escalation to SIGKILL still
/// reaches them. At the end of the job, `reapStragglers()` kills whatever is left, so no
/// step leaves processes behind on the build machine. (Processes that `setsid` away into a
/// new session escape this; see docs/operations.md.)
public final class ProcessGroupControl: Sendable {
    public enum StopReason: Sendable, Equatable {
        case cancelled(String)
        case timedOut
    }

    private struct State {
        var groups: [pid_t] = []
        var stopReason: StopReason?
        var killTask: Task<Void, Never>?
    }

    private let state = Mutex(State())
    public let grace: Duration

    public init(grace: Duration) {
        self.grace = grace
    }

    public var stopReason: StopReason? { state.withLock { $0.stopReason } }

    /// A command started as the leader of a new process group; if a stop was already
    /// requested, it is stopped at once.
    public func started(processGroup: pid_t) {
        let stopping = state.withLock { state -> Bool in
            state.groups.append(processGroup)
            return state.stopReason != nil
        }
        if stopping { Self.signal(SIGTERM, [processGroup]) }
    }

    /// Requests a stop. The first request decides the outcome (cancelled or timed out).
    public func stop(_ reason: StopReason) {
        let groups: [pid_t]? = state.withLock { state in
            guard state.stopReason == nil else { return nil }
            state.stopReason = reason
            return state.groups
        }
        guard let groups else { return }
        Self.signal(SIGTERM, groups)
        let grace = self.grace
        let task = Task { [weak self] in
            try? await Task.sleep(for: grace)
            guard !Task.isCancelled, let self else { return }
            Self.signal(SIGKILL, self.state.withLock { $0.groups })
        }
        state.withLock { $0.killTask = task }
    }

    /// The job is over: SIGKILL anything still running in its process groups.
    public func reapStragglers() {
        let groups = state.withLock { state -> [pid_t] in
            state.killTask?.cancel()
            return state.groups
        }
        Self.signal(SIGKILL, groups)
    }

    private static func signal(_ number: Int32, _ groups: [pid_t]) {
        // ESRCH (group already gone) is the normal case and is ignored.
        for group in groups { kill(-group, number) }
    }

    deinit {
        state.withLock { $0.killTask?.cancel() }
    }
}
