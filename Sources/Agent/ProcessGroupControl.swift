import Foundation
import Synchronization

/// Stops a step's whole process group: SIGTERM, then SIGKILL after the grace period.
///
/// Each command runs in its own session (so its own process group, led by the shell);
/// signalling `-pgid` reaches every process the step started that stayed in the group.
/// The first stop request wins and decides the outcome (cancelled or timed out).
public final class ProcessGroupControl: Sendable {
    public enum StopReason: Sendable, Equatable {
        case cancelled(String)
        case timedOut
    }

    private struct State {
        var processGroup: pid_t?
        var stopReason: StopReason?
        var killTask: Task<Void, Never>?
    }

    private let state = Mutex(State())
    public let grace: Duration

    public init(grace: Duration) {
        self.grace = grace
    }

    public var stopReason: StopReason? { state.withLock { $0.stopReason } }

    /// A command started; if a stop was already requested, it is stopped at once.
    public func started(processGroup: pid_t) {
        let stop = state.withLock { state -> Bool in
            state.processGroup = processGroup
            return state.stopReason != nil
        }
        if stop { signal(SIGTERM, escalate: true) }
    }

    public func exited() {
        state.withLock { $0.processGroup = nil }
    }

    public func stop(_ reason: StopReason) {
        let first = state.withLock { state -> Bool in
            guard state.stopReason == nil else { return false }
            state.stopReason = reason
            return true
        }
        if first { signal(SIGTERM, escalate: true) }
    }

    private func signal(_ number: Int32, escalate: Bool) {
        let group = state.withLock { $0.processGroup }
        if let group { kill(-group, number) }
        guard escalate else { return }
        let grace = self.grace
        let task = Task { [weak self] in
            try? await Task.sleep(for: grace)
            guard !Task.isCancelled, let self else { return }
            if let group = self.state.withLock({ $0.processGroup }) { kill(-group, SIGKILL) }
        }
        state.withLock { $0.killTask = task }
    }

    deinit {
        state.withLock { $0.killTask?.cancel() }
    }
}
