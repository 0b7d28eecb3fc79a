import Foundation
import GantryProtocol
import Logging

/// Every decision about jobs and agents, as a pure value type: the unfinished jobs, the
/// scheduler (queue, agents, and which agent holds which job), fencing, retries, cancel,
/// deadlines and dependencies.
///
/// Each event is a `mutating` method that returns a `LifecycleOutput`: the rows to commit
/// and the frames, notifications and log lines that follow. It never reads the clock (the
/// caller passes `now`), the store or a socket, so every path, failures included, is a unit
/// test that runs in microseconds (`JobLifecycleTests`). `CoordinatorCore` is the only
/// owner: it feeds events in, commits `writes` in one transaction, then carries out
/// `actions`.
///
/// Invariants:
/// - a job is in `jobs` exactly while it is not terminal;
/// - a job is held (leased or running) exactly while `scheduler.holder(of:)` names an agent,
///   and only that agent's messages about the job's current attempt are accepted (fencing);
/// - a lease is granted only to an agent that is connected and said `Ready`, so it is never
///   taken back; it ends by finish, refusal, cancel or loss, each recorded as an attempt.
public struct JobLifecycle: Sendable {
    public struct Configuration: Sendable {
        public var heartbeatInterval: Duration
        public var leaseTTL: Duration
        /// How long past `timeout + cancel_grace` to wait for the agent's own timeout report
        /// before ending the job here.
        public var deadlineSlack: TimeInterval

        public init(heartbeatInterval: Duration, leaseTTL: Duration, deadlineSlack: TimeInterval = 30) {
            self.heartbeatInterval = heartbeatInterval
            self.leaseTTL = leaseTTL
            self.deadlineSlack = deadlineSlack
        }

        /// How long an agent's connection must have been silent before another connection
        /// with its id may take over: two heartbeat intervals, so one late heartbeat is not
        /// enough, and inside the lease TTL (three intervals by default), so a genuine
        /// reconnect still resumes its jobs.
        public var takeoverSilence: Duration { heartbeatInterval * 2 }
    }

    /// What the coordinator knows about an agent beyond what dispatch needs.
    public struct AgentInfo: Sendable, Equatable {
        public var hostname: String
        public var labels: [String: String]
        public var lastSeenAt: Date
        /// When its connection last sent anything (monotonic), for the takeover rule.
        public var lastHeard: ContinuousClock.Instant
        /// The agent process's `Hello.instance`: proves a reconnect comes from it.
        public var instance: Data
    }

    public let configuration: Configuration
    public internal(set) var scheduler: Scheduler
    /// Every job that is not terminal, by id.
    public internal(set) var jobs: [String: StoredJob] = [:]
    /// Every pipeline with an unfinished job.
    public internal(set) var pipelines: [String: PipelineProgress] = [:]
    public internal(set) var agentInfo: [String: AgentInfo] = [:]
    /// Agents declared lost, kept an hour for `gantry agents`, at most `lostAgentLimit`.
    public internal(set) var lostAgents: [String: AgentInfo] = [:]
    static let lostAgentLimit = 10_000

    /// Starts from what the store holds: `unfinished` jobs and, for each of their
    /// pipelines, the pipeline and all its jobs (for sources and dependency states).
    /// Queued (and `lost`) jobs are queued again; held ones get one lease TTL for their
    /// agent to reconnect and claim them.
    public init(
        configuration: Configuration, unfinished: [StoredJob], pipelines: [String: PipelineProgress],
        now: ContinuousClock.Instant
    ) {
        self.configuration = configuration
        self.scheduler = Scheduler(configuration: .init(leaseTTL: configuration.leaseTTL))
        self.pipelines = pipelines
        for var job in unfinished {
            switch job.state {
            case .queued, .lost:
                job.state = .queued
                _ = scheduler.enqueue(.init(id: job.id, selector: job.agents))
            case .leased, .running:
                scheduler.adoptLease(job: job.id, agent: job.agentId ?? "unknown", now: now)
            case .waiting, .succeeded, .failed, .cancelled, .timedOut:
                break
            }
            jobs[job.id] = job
        }
    }

    // MARK: - Shared steps of events

    /// The job if `attempt` is its current lease and `agent` holds it; otherwise tells the
    /// agent its copy is stale (it must stop it) and returns nil. This is the fencing.
    func current(_ jobID: String, attempt: UInt32, agent: String, into turn: inout LifecycleOutput) -> StoredJob? {
        if let job = jobs[jobID], job.attempt == Int(attempt), job.state.isHeld, scheduler.holder(of: jobID) == agent {
            return job
        }
        turn.send(
            .error(
                .staleAttempt, "attempt \(attempt) of job \(jobID) is no longer yours: stop it", jobID: jobID,
                attempt: attempt, fatal: false),
            to: agent)
        return nil
    }

    /// Carries out the scheduler's decisions.
    mutating func apply(_ actions: [Scheduler.Action], now: Date, into turn: inout LifecycleOutput) {
        for action in actions {
            switch action {
            case .lease(let jobID, let agentID):
                grant(jobID, to: agentID, now: now, into: &turn)
            case .lost(let jobID, let agentID):
                lost(jobID, agent: agentID, now: now, into: &turn)
            case .forgetAgent(let agentID):
                turn.log(.warning, "agent lost: no heartbeat within the lease TTL", ["agent": "\(agentID.logSafe())"])
                turn.actions.append(.closeConnection(agent: agentID))
                if let info = agentInfo.removeValue(forKey: agentID) { rememberLost(agentID, info) }
            }
        }
        if !actions.isEmpty { turn.actions.append(.demandChanged) }
    }

    /// A job became runnable: lease it now if a ready agent matches, or queue it.
    mutating func enqueue(_ job: StoredJob, now: Date, into turn: inout LifecycleOutput) {
        apply(scheduler.enqueue(.init(id: job.id, selector: job.agents)), now: now, into: &turn)
        turn.actions.append(.demandChanged)
    }

    /// The scheduler granted `jobID` to `agentID` (connected, ready, matching): start a new
    /// attempt and send the lease.
    private mutating func grant(_ jobID: String, to agentID: String, now: Date, into turn: inout LifecycleOutput) {
        guard var job = jobs[jobID], let pipeline = pipelines[job.pipelineId] else {
            // Cannot happen: only unfinished jobs are queued. Release the slot rather than
            // hold a lease nobody will run.
            scheduler.release(job: jobID)
            turn.log(.error, "the scheduler granted a job the lifecycle does not know", ["job": "\(jobID)"])
            return
        }
        job.attempt += 1
        job.state = .leased
        job.agentId = agentID
        job.logLength = 0
        job.startedAt = nil
        jobs[jobID] = job
        turn.write(.updateJob(job))
        turn.write(.saveAttempt(attemptRecord(job, agent: agentID, state: .leased, reason: nil, now: now)))
        if let queuedAt = job.queuedAt {
            turn.actions.append(.queueWait(seconds: now.timeIntervalSince(queuedAt), selector: job.agents))
        }
        turn.send(
            .with {
                $0.lease = .with {
                    $0.jobID = job.id
                    $0.attempt = UInt32(clamping: job.attempt)
                    $0.pipelineID = job.pipelineId
                    $0.stepKey = job.key
                    $0.commands = job.commands
                    $0.env = job.env
                    // Clamped, not converted: a row written before the parser's limits
                    // existed must not trap the coordinator on every restart.
                    $0.timeoutSeconds = UInt32(clamping: job.timeoutSeconds ?? 0)
                    $0.cancelGraceSeconds = UInt32(clamping: job.cancelGraceSeconds)
                    $0.repository = pipeline.repository
                    $0.commit = pipeline.commit
                    $0.branch = pipeline.branch
                    // Secret values are added by `CoordinatorCore.perform` as the frame
                    // leaves, so they never enter the lifecycle's output.
                    $0.environment = job.environment ?? ""
                }
            },
            to: agentID)
        turn.notify(jobID)
    }

    /// The agent holding `jobID` vanished (TTL) or restarted without it.
    mutating func lost(_ jobID: String, agent agentID: String, now: Date, into turn: inout LifecycleOutput) {
        guard let job = jobs[jobID] else { return }
        if let cancelReason = job.cancelReason {
            finish(job, agent: agentID, state: .cancelled, reason: cancelReason, attemptState: .lost, now: now, into: &turn)
        } else if let rule = Self.retryRule(for: job, lost: true, exitStatus: nil) {
            turn.log(.warning, "job lost with its agent", ["job": "\(jobID)", "agent": "\(agentID.logSafe())"])
            retry(job, agent: agentID, rule: rule, attemptState: .lost, reason: "agent_lost", now: now, into: &turn)
        } else {
            turn.log(.error, "job lost with its agent; no retries left", ["job": "\(jobID)"])
            finish(job, agent: agentID, state: .failed, reason: "agent_lost", attemptState: .lost, now: now, into: &turn)
        }
    }

    /// The first retry rule that still allows another attempt after one that ended this
    /// way (`lost`, or failed with `exitStatus`), if any.
    static func retryRule(for job: StoredJob, lost: Bool, exitStatus: Int?) -> RetryRule? {
        job.retry.first { rule in
            guard job.retryCounts[rule.key, default: 0] < rule.limit else { return false }
            switch rule.condition {
            case .agentLost: return lost
            case .exitStatus(let status): return !lost && exitStatus == status
            case .anyExitStatus: return !lost && (exitStatus ?? 0) != 0
            }
        }
    }

    /// Ends the current attempt as `attemptState` and queues the job for a new one.
    mutating func retry(
        _ job: StoredJob, agent agentID: String, rule: RetryRule, attemptState: AttemptState, reason: String, now: Date,
        into turn: inout LifecycleOutput
    ) {
        var job = job
        var attempt = attemptRecord(job, agent: agentID, state: attemptState, reason: reason, now: now)
        attempt.exitStatus = job.exitStatus
        attempt.finishedAt = now
        scheduler.release(job: job.id)
        let used = job.retryCounts[rule.key, default: 0] + 1
        job.retryCounts[rule.key] = used
        job.state = .queued
        job.agentId = nil
        job.queuedAt = now
        job.reason =
            "retrying after \(rule.condition == .agentLost ? "agent_lost" : "exit status \(job.exitStatus ?? -1)") "
            + "(\(used) of \(rule.limit))"
        jobs[job.id] = job
        pipelines[job.pipelineId]?.stepStates[job.key] = .queued
        turn.write(.updateJob(job))
        turn.write(.saveAttempt(attempt))
        turn.log(.warning, "retrying job", ["job": "\(job.id)", "rule": "\(rule.key)", "attempt": "\(job.attempt)"])
        turn.notify(job.id)
        enqueue(job, now: now, into: &turn)
    }

    /// Puts a job in a terminal state: records the attempt (if an agent held one), releases
    /// its slot, settles its dependents, and leases what that unblocked, all in this turn.
    mutating func finish(
        _ job: StoredJob, agent agentID: String?, state: JobState, exitStatus: Int? = nil, reason: String?,
        attemptState: AttemptState? = nil, now: Date, into turn: inout LifecycleOutput
    ) {
        var job = job
        job.state = state
        job.exitStatus = exitStatus
        job.reason = reason
        job.finishedAt = now
        scheduler.release(job: job.id)
        turn.write(.updateJob(job))
        if let agentID, job.attempt > 0 {
            var record = attemptRecord(
                job, agent: agentID, state: attemptState ?? AttemptState(ending: state), reason: reason, now: now)
            record.exitStatus = exitStatus
            record.finishedAt = now
            turn.write(.saveAttempt(record))
        }
        retire(job)
        turn.notify(job.id)
        turn.log(
            .info, "job finished",
            ["job": "\(job.id)", "step": "\(job.key)", "state": "\(state.rawValue)", "exit": "\(exitStatus.map(String.init) ?? "-")"])
        settleDependents(of: job, now: now, into: &turn)
        turn.actions.append(.demandChanged)
    }

    /// Removes a job that reached a terminal state from the unfinished set, and its
    /// pipeline's progress once nothing of it is left to run.
    mutating func retire(_ job: StoredJob) {
        guard jobs.removeValue(forKey: job.id) != nil else { return }
        guard var progress = pipelines[job.pipelineId] else { return }
        progress.stepStates[job.key] = job.state
        progress.waiting.remove(job.id)
        progress.unfinished -= 1
        pipelines[job.pipelineId] = progress.unfinished > 0 ? progress : nil
    }

    /// After `job` reached a terminal state: waiting steps whose dependencies all succeeded
    /// are queued; those with a dependency that did not succeed are cancelled, transitively.
    /// Reads only the pipeline's progress: no store read inside the turn.
    private mutating func settleDependents(of job: StoredJob, now: Date, into turn: inout LifecycleOutput) {
        var unblocked: [StoredJob] = []
        var progress = true
        while progress, let pipeline = pipelines[job.pipelineId], !pipeline.waiting.isEmpty {
            progress = false
            for id in pipeline.waiting.sorted() {
                guard var candidate = jobs[id] else { continue }
                let states = candidate.dependsOn.map { pipeline.stepStates[$0] ?? .waiting }
                if let failed = zip(candidate.dependsOn, states).first(where: { $0.1.isTerminal && $0.1 != .succeeded }) {
                    candidate.state = .cancelled
                    candidate.reason = "dependency `\(failed.0)` \(failed.1.rawValue)"
                    candidate.finishedAt = now
                    turn.write(.updateJob(candidate))
                    retire(candidate)
                    turn.notify(candidate.id)
                    progress = true
                } else if states.allSatisfy({ $0 == .succeeded }) {
                    candidate.state = .queued
                    candidate.queuedAt = now
                    jobs[id] = candidate
                    pipelines[job.pipelineId]?.waiting.remove(id)
                    pipelines[job.pipelineId]?.stepStates[candidate.key] = .queued
                    turn.write(.updateJob(candidate))
                    turn.notify(candidate.id)
                    unblocked.append(candidate)
                }
            }
        }
        for next in unblocked.sorted(by: { $0.position < $1.position }) { enqueue(next, now: now, into: &turn) }
    }

    func attemptRecord(_ job: StoredJob, agent: String, state: AttemptState, reason: String?, now: Date) -> StoredAttempt {
        StoredAttempt(
            jobId: job.id, attempt: job.attempt, agentId: agent, state: state, exitStatus: nil, reason: reason,
            leasedAt: now, startedAt: job.startedAt, finishedAt: nil)
    }

    mutating func rememberLost(_ agentID: String, _ info: AgentInfo) {
        if lostAgents.count >= Self.lostAgentLimit,
            let oldest = lostAgents.min(by: { $0.value.lastSeenAt < $1.value.lastSeenAt })?.key
        {
            lostAgents.removeValue(forKey: oldest)
        }
        lostAgents[agentID] = info
    }

    static func cancelFrame(_ job: StoredJob, reason: String) -> Gantry_V1_Envelope {
        .with {
            $0.cancel = .with {
                $0.jobID = job.id
                $0.attempt = UInt32(clamping: job.attempt)
                $0.reason = reason
            }
        }
    }
}
