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
        /// Why the agent says it takes no new jobs (its last heartbeat's
        /// `not_ready_reason`, say a disk below its floor); nil when it takes them, and
        /// until its first heartbeat after a (re)connect.
        public var notReadyReason: String? = nil
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
    /// Slots of concurrency groups (`concurrency:`), across all pipelines.
    public internal(set) var groups = ConcurrencyGroups()
    /// The next `StoredJob.sequence`: one more than any unfinished job's.
    public internal(set) var nextSequence = 1

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
        nextSequence = (unfinished.map(\.sequence).max() ?? 0) + 1
        // Held jobs keep their group slots first, so re-admitting the queued ones in their
        // stored order admits exactly the jobs that were admitted before the restart.
        var queued: [StoredJob] = []
        for var job in unfinished {
            switch job.state {
            case .queued, .lost:
                job.state = .queued
                queued.append(job)
            case .leased, .running:
                scheduler.adoptLease(job: job.id, agent: job.agentId ?? "unknown", now: now)
                if let rule = job.concurrency {
                    groups.adopt(.init(job: job.id, sequence: job.sequence, limit: rule.limit), group: rule.group)
                }
            case .waiting, .succeeded, .failed, .cancelled, .timedOut, .skipped, .blocked:
                break
            }
            jobs[job.id] = job
        }
        for job in queued.sorted(by: { ($0.sequence, $0.position) < ($1.sequence, $1.position) }) {
            guard let rule = job.concurrency else {
                _ = scheduler.enqueue(self.queued(job))
                continue
            }
            let member = ConcurrencyGroups.Member(job: job.id, sequence: job.sequence, limit: rule.limit)
            for id in groups.arrive(member, group: rule.group) {
                if let admitted = jobs[id] { _ = scheduler.enqueue(self.queued(admitted)) }
            }
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

    /// An admitted job goes to the scheduler: leased now if a ready agent matches, or
    /// queued by priority and age. Automatic retries and refused leases come back here
    /// and keep their group slot and their place.
    mutating func enqueue(_ job: StoredJob, now: Date, into turn: inout LifecycleOutput) {
        apply(scheduler.enqueue(queued(job)), now: now, into: &turn)
        turn.actions.append(.demandChanged)
    }

    /// A job became runnable for the first time (or again, by `gantry retry`): it takes
    /// the next sequence number, then enters its concurrency group, or the queue.
    /// `job.state` must already be `queued`; the caller wrote nothing for it yet.
    mutating func makeRunnable(_ job: StoredJob, now: Date, into turn: inout LifecycleOutput) {
        var job = job
        job.state = job.block == nil ? .queued : .blocked
        job.queuedAt = now
        job.sequence = nextSequence
        nextSequence += 1
        jobs[job.id] = job
        turn.write(.updateJob(job))
        turn.notify(job.id)
        guard job.block == nil else {
            // A gate waits for a person, not an agent: nothing is queued or held.
            turn.log(.info, "pipeline waits for approval", ["pipeline": "\(job.pipelineId)", "step": "\(job.key)"])
            return
        }
        admit(job, now: now, into: &turn)
    }

    /// Sends a queued job to the scheduler, through its concurrency group if it has one.
    /// With `cancel_in_progress`, the group's older jobs of *other* pipelines are
    /// cancelled first (a newer build supersedes an older one; jobs of one pipeline, such
    /// as a matrix sharing a group, queue behind each other instead of cancelling each
    /// other). Cancelled jobs keep their slots until they have ended, so the limit holds.
    mutating func admit(_ job: StoredJob, now: Date, into turn: inout LifecycleOutput) {
        guard let rule = job.concurrency else {
            enqueue(job, now: now, into: &turn)
            return
        }
        if rule.cancelInProgress {
            let superseded = groups.members(of: rule.group, olderThan: job.sequence).filter {
                jobs[$0].map { $0.pipelineId != job.pipelineId } ?? false
            }
            for older in superseded {
                cancel(
                    older, reason: "superseded by a newer job in concurrency group `\(rule.group)` (cancel_in_progress)",
                    now: now, into: &turn)
            }
        }
        let admitted = groups.arrive(.init(job: job.id, sequence: job.sequence, limit: rule.limit), group: rule.group)
        if !admitted.contains(job.id), var held = jobs[job.id] {
            held.reason = "waiting for a slot in concurrency group `\(rule.group)` (limit \(rule.limit))"
            jobs[job.id] = held
            turn.write(.updateJob(held))
        }
        startAdmitted(admitted, now: now, into: &turn)
    }

    /// Queues jobs a concurrency group just admitted.
    mutating func startAdmitted(_ ids: [String], now: Date, into turn: inout LifecycleOutput) {
        for id in ids {
            guard var job = jobs[id] else { continue }
            if job.reason != nil {
                job.reason = nil
                jobs[id] = job
                turn.write(.updateJob(job))
                turn.notify(id)
            }
            enqueue(job, now: now, into: &turn)
        }
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
        job.failure = nil
        jobs[jobID] = job
        turn.write(.updateJob(job))
        turn.write(.saveAttempt(attemptRecord(job, agent: agentID, state: .leased, reason: nil, now: now)))
        if let queuedAt = job.queuedAt {
            turn.actions.append(.queueWait(seconds: now.timeIntervalSince(queuedAt), selector: job.agents))
        }
        turn.send(.with { $0.lease = Self.lease(for: job, pipeline: pipeline) }, to: agentID)
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
        attemptState: AttemptState? = nil, outcome: JobOutcome? = nil, now: Date, into turn: inout LifecycleOutput
    ) {
        var job = job
        job.state = state
        job.exitStatus = exitStatus
        job.reason = reason
        job.finishedAt = now
        job.outcome = outcome ?? Self.outcome(of: job)
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
        startAdmitted(groups.leave(job.id), now: now, into: &turn)
        decideDependents(of: [job.key], pipeline: job.pipelineId, now: now, into: &turn)
        turn.actions.append(.demandChanged)
    }

    /// What a job that just reached `state` means for its pipeline: soft failures pass.
    static func outcome(of job: StoredJob) -> JobOutcome {
        switch job.state {
        case .failed, .timedOut:
            return job.softFail.covers(exitStatus: job.exitStatus, timedOut: job.state == .timedOut) ? .passed : .failed
        default:
            return JobOutcome(state: job.state)
        }
    }

    /// Removes a job that reached a terminal state from the unfinished set, and its
    /// pipeline's progress once nothing of it is left to run.
    mutating func retire(_ job: StoredJob) {
        guard jobs.removeValue(forKey: job.id) != nil else { return }
        guard var progress = pipelines[job.pipelineId] else { return }
        progress.ended(job)
        progress.waiting.remove(job.id)
        progress.pendingDependencies.removeValue(forKey: job.id)
        progress.unfinished -= 1
        pipelines[job.pipelineId] = progress.unfinished > 0 ? progress : nil
    }

    /// After the steps `keys` may have ended: decides every waiting job whose dependencies
    /// have now all ended, by its `when:` and their combined outcome (docs/pipeline.md,
    /// "Failure handling"). A job that does not run ends here, which may end its own step
    /// and decide the jobs after it, so this is a worklist over steps. Reads only the
    /// pipeline's progress: no store read inside the turn.
    mutating func decideDependents(of keys: [String], pipeline pipelineID: String, now: Date, into turn: inout LifecycleOutput) {
        var pending = keys
        var runnable: [StoredJob] = []
        while let key = pending.popLast() {
            guard let progress = pipelines[pipelineID], progress.steps[key]?.isComplete ?? true else { continue }
            for id in progress.dependents[key] ?? [] {
                guard let progress = pipelines[pipelineID], progress.waiting.contains(id), var job = jobs[id],
                    progress.dependenciesEnded(job)
                else { continue }
                let (outcome, culprit) = progress.dependencyOutcome(job)
                pipelines[pipelineID]?.waiting.remove(id)
                pipelines[pipelineID]?.pendingDependencies.removeValue(forKey: id)
                if let verdict = Self.verdict(when: job.when, dependencies: outcome, culprit: culprit) {
                    job.state = verdict.state
                    job.outcome = verdict.outcome
                    job.reason = verdict.reason
                    job.finishedAt = now
                    turn.write(.updateJob(job))
                    retire(job)
                    turn.notify(job.id)
                    pending.append(job.key)
                } else {
                    job.state = .queued
                    jobs[id] = job
                    runnable.append(job)
                }
            }
        }
        for job in runnable.sorted(by: { $0.position < $1.position }) { makeRunnable(job, now: now, into: &turn) }
    }

    /// How a job whose dependencies all ended with `outcome` ends without running, or nil
    /// if it runs. The reasons start with "dependenc" (`isDecidedByDependencies`).
    static func verdict(when: RunWhen, dependencies outcome: JobOutcome, culprit: String?)
        -> (state: JobState, outcome: JobOutcome, reason: String)?
    {
        let named = culprit.map { "`\($0)`" } ?? "a dependency"
        switch (when, outcome) {
        case (.always, _), (.onSuccess, .passed), (.onFailure, .failed):
            return nil
        case (.onSuccess, .failed):
            return (.skipped, .failed, "dependency \(named) failed")
        case (_, .cancelled):
            return (.cancelled, .cancelled, "dependency \(named) cancelled")
        case (.onFailure, .passed):
            return (.skipped, .passed, "dependencies passed (when: on_failure)")
        }
    }

    /// A job that ended without running because of how its dependencies ended: what
    /// `gantry retry` of a job before it decides again.
    static func isDecidedByDependencies(_ job: StoredJob) -> Bool {
        job.attempt == 0 && (job.state == .skipped || job.state == .cancelled) && job.reason?.hasPrefix("dependenc") == true
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
