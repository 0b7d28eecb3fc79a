import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Stops a job's processes: SIGTERM, then SIGKILL after the grace period.
///
/// Three nets, so nothing the step started survives:
/// - each command runs in its own session, so its own process group led by the shell;
///   while the leader lives, signalling `-pgid` reaches everything left in the group;
/// - every process carrying this attempt's `GANTRY_JOB_ID`/`GANTRY_ATTEMPT` in its
///   environment (`JobProcesses`), which also finds processes that left the group
///   (`setsid`) or whose leader already exited;
/// - the attempt's cgroup (`JobCgroup`), where the agent can create one, which catches
///   even a process that scrubbed its environment and left the session.
/// Groups are signalled only while their leader is alive (so its pid cannot have been
/// reused), and the environment check identifies the rest. `reapStragglers()` SIGKILLs
/// whatever is left when the job ends.
public final class ProcessGroupControl: Sendable {
    public enum StopReason: Sendable, Equatable {
        case cancelled(String)
        case timedOut
        /// The agent cannot carry on with the job (its log cannot be read back): the job
        /// fails with this reason.
        case failed(String)
    }

    private struct State {
        var liveLeaders: Set<pid_t> = []
        var stopReason: StopReason?
        var killTask: Task<Void, Never>?
    }

    private let state = Mutex(State())
    public let jobID: String
    public let attempt: UInt32
    public let grace: Duration
    /// The attempt's cgroup where the agent can create one: the third net, which nothing
    /// the step forks can leave.
    public let cgroup: JobCgroup?

    public init(jobID: String, attempt: UInt32, grace: Duration, useCgroup: Bool = true) {
        self.jobID = jobID
        self.attempt = attempt
        self.grace = grace
        self.cgroup = useCgroup ? JobCgroup.create(jobID: jobID, attempt: attempt) : nil
    }

    public var stopReason: StopReason? { state.withLock { $0.stopReason } }

    /// A command started as the leader of a new process group (its pid is the group id);
    /// if a stop was already requested, it is stopped at once.
    public func started(processGroup: pid_t) {
        OrphanReaper.registerLeader(processGroup)
        let stopping = state.withLock { state -> Bool in
            state.liveLeaders.insert(processGroup)
            return state.stopReason != nil
        }
        if stopping { kill(-processGroup, SIGTERM) }
    }

    /// The command's leader exited and was reaped: its group id may be reused from now on.
    public func leaderExited(processGroup: pid_t) {
        state.withLock { _ = $0.liveLeaders.remove(processGroup) }
        OrphanReaper.unregisterLeader(processGroup)
    }

    /// Requests a stop. The first request decides the outcome (cancelled or timed out).
    public func stop(_ reason: StopReason) {
        let first = state.withLock { state -> Bool in
            guard state.stopReason == nil else { return false }
            state.stopReason = reason
            return true
        }
        guard first else { return }
        signalAll(SIGTERM)
        let grace = self.grace
        let task = Task { [weak self] in
            try? await Task.sleep(for: grace)
            guard !Task.isCancelled, let self else { return }
            self.signalAll(SIGKILL)
        }
        state.withLock { $0.killTask = task }
    }

    /// The job is over: SIGKILL anything of it still alive (and remove its cgroup).
    /// Returns how many processes were found.
    @discardableResult
    public func reapStragglers() -> Int {
        state.withLock { $0.killTask?.cancel() }
        let found = signalAll(SIGKILL)
        cgroup?.destroy()
        return found
    }

    @discardableResult
    private func signalAll(_ number: Int32) -> Int {
        let leaders = state.withLock { $0.liveLeaders }
        for leader in leaders { kill(-leader, number) }
        if let cgroup {
            // Nothing the step forks can leave its cgroup, so the /proc environment scan
            // (a few ms on a busy host) is only needed without one.
            cgroup.signal(number)
            return cgroup.processIDs.count
        }
        return JobProcesses.signal(number, jobID: jobID, attempt: attempt)
    }

    deinit {
        state.withLock { $0.killTask?.cancel() }
    }
}
