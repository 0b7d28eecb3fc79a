import Foundation
import GantryProtocol
import Logging
import NIOCore

/// The coordinator's single writer: owns the scheduler, the agent sessions and the cache of
/// unfinished jobs, and is the only code that changes a job's state.
///
/// Each event is handled to completion without suspending: persist (commit) first, then
/// queue the frames that acknowledge it. Store calls are synchronous SQLite transactions
/// of tens of microseconds (DESIGN.md measures 44 µs), cheaper than an actor hop.
public actor CoordinatorCore {
    public struct Configuration: Sendable {
        public var coordinatorID: String
        public var heartbeatInterval: Duration
        public var leaseTTL: Duration

        public init(
            coordinatorID: String = "gantry", heartbeatInterval: Duration = .seconds(5), leaseTTL: Duration? = nil
        ) {
            self.coordinatorID = coordinatorID
            self.heartbeatInterval = heartbeatInterval
            self.leaseTTL = leaseTTL ?? heartbeatInterval * 3
        }
    }

    struct PipelineSource {
        var repository: String
        var commit: String
        var branch: String
    }

    struct AgentInfo {
        var hostname: String
        var labels: [String: String]
        var lastSeenAt: Date
        /// When the current session last sent anything (monotonic), for the takeover rule.
        var lastHeard: ContinuousClock.Instant
        /// The agent process's `Hello.instance`: proves a reconnect comes from it.
        var instance: Data
        var state: String
    }

    /// How long an agent's connection must have been silent before another connection
    /// with its id may take over: two heartbeat intervals, so one late heartbeat is not
    /// enough, and well inside the lease TTL (three intervals by default), so a genuine
    /// reconnect still resumes its jobs.
    static func takeoverSilence(heartbeatInterval: Duration) -> Duration {
        heartbeatInterval * 2
    }

    public let configuration: Configuration
    public nonisolated let metrics: CoordinatorMetrics
    let store: any CoordinatorStore
    let logger: Logger
    var scheduler: Scheduler
    var sessions: [String: AgentSession] = [:]
    /// Every job that is not terminal, by id. Terminal jobs live only in the store.
    var jobs: [String: StoredJob] = [:]
    var agentInfo: [String: AgentInfo] = [:]
    /// Agents declared lost, kept for an hour so `gantry agents` can show them; at most
    /// `lostAgentLimit` of them, the oldest forgotten first.
    var lostAgents: [String: AgentInfo] = [:]
    static let lostAgentLimit = 10_000
    var watchers: [String: [UUID: AsyncStream<Void>.Continuation]] = [:]
    var pipelineSources: [String: PipelineSource] = [:]
    static let pipelineSourceCacheLimit = 10_000
    /// Connected autoscalers by id (see `CoordinatorCore+Scalers.swift`).
    var scalers: [String: ScalerConnection] = [:]
    var demandPushPending = false

    public init(
        store: any CoordinatorStore, configuration: Configuration, logger: Logger, metrics: CoordinatorMetrics = CoordinatorMetrics()
    ) throws {
        self.store = store
        self.metrics = metrics
        self.configuration = configuration
        self.logger = logger
        var scheduler = Scheduler(configuration: .init(leaseTTL: configuration.leaseTTL))
        var cache: [String: StoredJob] = [:]
        let now = ContinuousClock.now
        for var job in try store.unfinishedJobs() {
            switch Optional(job.state) {
            case .queued, .lost:
                job.state = JobState.queued
                _ = scheduler.enqueue(.init(id: job.id, selector: job.agents))
            case .leased, .running:
                // Its agent gets one TTL to reconnect and claim it; otherwise it is lost.
                scheduler.adoptLease(job: job.id, agent: job.agentId ?? "unknown", now: now)
            default:
                break
            }
            cache[job.id] = job
        }
        self.scheduler = scheduler
        self.jobs = cache
    }

    // MARK: - Pipelines (HTTP API)

    /// Parses, stores and enqueues a pipeline. Nothing is stored if the file is invalid.
    ///
    /// Parsing runs on the caller's task, outside the actor: YAML is the most expensive
    /// input the coordinator takes, and the single writer must not wait on it.
    public nonisolated func submit(_ request: API.SubmitPipeline) async throws -> API.Pipeline {
        try SubmissionCheck.check(request)
        let definition = try PipelineParser(file: request.file ?? "pipeline.yml").parse(request.yaml)
        return try await submit(request, definition: definition)
    }

    /// Stores and enqueues a pipeline that `PipelineParser` has already accepted.
    func submit(_ request: API.SubmitPipeline, definition: PipelineDefinition) throws -> API.Pipeline {
        let file = request.file ?? "pipeline.yml"
        let now = Date()
        let pipeline = StoredPipeline(
            id: Self.newID(), file: file, yaml: request.yaml, repository: request.repository ?? "",
            commit: request.commit ?? "", branch: request.branch ?? "", env: request.env ?? [:], createdAt: now)
        let created = definition.steps.enumerated().map { position, step in
            StoredJob(
                id: Self.newID(), pipelineId: pipeline.id, position: position, key: step.key, name: step.name,
                state: step.dependsOn.isEmpty ? JobState.queued : JobState.waiting,
                commands: step.commands,
                env: definition.env.merging(pipeline.env) { $1 }.merging(step.env) { $1 },
                agents: step.agents, dependsOn: step.dependsOn, timeoutSeconds: step.timeoutSeconds,
                cancelGraceSeconds: step.cancelGraceSeconds, retry: step.retry, retryCounts: [:], cancelReason: nil,
                attempt: 0, agentId: nil, exitStatus: nil, reason: nil, createdAt: now,
                queuedAt: step.dependsOn.isEmpty ? now : nil, startedAt: nil, finishedAt: nil, logLength: 0)
        }
        try store.insert(pipeline: pipeline, jobs: created)
        cache(PipelineSource(repository: pipeline.repository, commit: pipeline.commit, branch: pipeline.branch), for: pipeline.id)
        for job in created { jobs[job.id] = job }
        logger.info("pipeline submitted", metadata: ["pipeline": "\(pipeline.id)", "jobs": "\(created.count)"])
        var actions: [Scheduler.Action] = []
        for job in created where job.state == JobState.queued {
            actions += scheduler.enqueue(.init(id: job.id, selector: job.agents))
        }
        perform(actions)
        return Self.view(pipeline, jobs: created.map { jobs[$0.id] ?? $0 })
    }

    public func pipeline(id: String) throws -> API.Pipeline? {
        guard let pipeline = try store.pipeline(id: id) else { return nil }
        return Self.view(pipeline, jobs: try store.jobs(pipelineID: id))
    }

    public func job(id: String) throws -> StoredJob? {
        if let cached = jobs[id] { return cached }
        return try store.job(id: id)
    }

    public func listJobs(states: [JobState]?, limit: Int) throws -> [API.Job] {
        try store.jobs(states: states, limit: limit).map(Self.view)
    }

    public func listAgents() -> [API.Agent] {
        let cutoff = Date().addingTimeInterval(-3600)
        lostAgents = lostAgents.filter { $0.value.lastSeenAt > cutoff }
        let lost = lostAgents.filter { scheduler.agents[$0.key] == nil }.map { id, info in
            API.Agent(
                id: id, labels: info.labels, state: "lost", hostname: info.hostname, connected: false, runningJobs: [],
                lastSeenAt: info.lastSeenAt)
        }
        return (scheduler.agents.values.map { agent in
            let info = agentInfo[agent.id]
            return API.Agent(
                id: agent.id, labels: agent.labels, state: agent.state.rawValue, hostname: info?.hostname ?? "",
                connected: agent.connected, runningJobs: agent.running.sorted(), lastSeenAt: info?.lastSeenAt)
        } + lost).sorted { $0.id < $1.id }
    }

    /// A stream that yields whenever the job's log grows or its state changes.
    public func watch(jobID: String) -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let token = UUID()
        watchers[jobID, default: [:]][token] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unwatch(jobID: jobID, token: token) }
        }
        return stream
    }

    /// Graceful shutdown: end every log follower (so HTTP requests complete) and every
    /// agent session. Jobs stay as they are in the store; agents reconnect to the next
    /// coordinator process and resume.
    public func shutdown() {
        for continuation in watchers.values.flatMap(\.values) { continuation.finish() }
        watchers.removeAll()
        for session in sessions.values { session.close() }
        for scaler in scalers.values { scaler.session.close() }
    }

    private func unwatch(jobID: String, token: UUID) {
        watchers[jobID]?.removeValue(forKey: token)
        if watchers[jobID]?.isEmpty == true { watchers.removeValue(forKey: jobID) }
    }

    private func notify(jobID: String) {
        for continuation in watchers[jobID]?.values ?? [:].values { continuation.yield() }
    }

    // MARK: - Agent connections

    public enum HelloRejection: Error, Sendable {
        case refused(Gantry_V1_ErrorCode, String)
    }

    /// Validates a handshake and registers the session. `certificateName` is the common
    /// name of the agent's verified client certificate.
    /// `now` is injectable so tests can move time forward instead of sleeping.
    public func hello(
        _ hello: Gantry_V1_Hello, certificateName: String, session: AgentSession, now: ContinuousClock.Instant = .now
    ) -> Result<Gantry_V1_Welcome, HelloRejection> {
        do {
            try MessageValidation.validate(.with { $0.hello = hello }, authenticated: false)
        } catch {
            return .failure(.refused(error.code, error.description))
        }
        guard let version = ProtocolVersion.negotiate(peerMinimum: hello.minVersion, peerMaximum: hello.maxVersion)
        else {
            let error = ProtocolError.unsupportedVersion(peerMinimum: hello.minVersion, peerMaximum: hello.maxVersion)
            return .failure(.refused(.unsupportedVersion, error.description))
        }
        guard hello.agentID == certificateName || hello.agentID.hasPrefix(certificateName + "/") else {
            return .failure(
                .refused(
                    .agentIDMismatch,
                    "agent id '\(hello.agentID)' is not covered by the client certificate for '\(certificateName)'"))
        }
        if hello.role == .scaler {
            return scalerHello(hello, version: version, certificateName: certificateName, session: session)
        }
        let agentID = hello.agentID
        if let previous = sessions[agentID] {
            // A genuine reconnect comes from the same agent process (its `instance` matches
            // the live connection's) or from one whose old connection went silent (a
            // network cut the coordinator has not noticed yet). A live session that is
            // still heartbeating, claimed by another process, means two agents share the
            // id: refuse the newcomer, or the two would take each other's connection, and
            // jobs would be lost, retried and could run twice.
            let known = agentInfo[agentID]
            let silence = known.map { now - $0.lastHeard } ?? .seconds(0)
            let sameProcess = !hello.instance.isEmpty && known?.instance == hello.instance
            // An ephemeral slot's next process reuses the id the moment the last one exits,
            // often before its EOF reaches the core: an agent that is done (one-shot with
            // its job finished, or drained) and holds nothing may be replaced at once.
            let exiting = scheduler.agents[agentID].map {
                $0.running.isEmpty && (($0.oneShot && $0.leasesGranted > 0) || $0.draining)
            } ?? false
            guard sameProcess || exiting || silence >= Self.takeoverSilence(heartbeatInterval: configuration.heartbeatInterval) else {
                logger.warning(
                    "refused a second connection for a connected agent id", metadata: ["agent": "\(agentID.logSafe())"])
                return .failure(
                    .refused(
                        .agentIDInUse,
                        "agent id '\(agentID)' is already connected and heartbeating: is another agent on this host running "
                            + "with the same --slot? Give each agent a distinct --slot. (A reconnect of the same agent is "
                            + "accepted once its old connection has missed its heartbeats.)"))
            }
            logger.info(
                "agent reconnected; closing its previous connection",
                metadata: ["agent": "\(agentID.logSafe())", "silent": "\(silence)", "same_process": "\(sameProcess)"])
            previous.close()
        }
        var resume: [Gantry_V1_Resume] = []
        var held: [String] = []
        for attempt in hello.held {
            let job = jobs[attempt.jobID]
            let current =
                job.map {
                    $0.attempt == Int(attempt.attempt) && $0.agentId == agentID
                        && ($0.state == JobState.leased || $0.state == JobState.running)
                } ?? false
            resume.append(
                .with {
                    $0.jobID = attempt.jobID
                    $0.attempt = attempt.attempt
                    $0.logOffset = UInt64(job?.logLength ?? 0)
                    $0.abort = !current
                })
            if current { held.append(attempt.jobID) }
        }
        let abandoned = scheduler.agentConnected(
            id: agentID, labels: hello.labels, capacity: Int(max(hello.capacity, 1)), oneShot: hello.oneShot,
            held: held, now: now)
        sessions[agentID] = session
        lostAgents.removeValue(forKey: agentID)
        perform(abandoned)
        for jobID in held {
            if let job = jobs[jobID], let reason = job.cancelReason { session.send(Self.cancelFrame(job, reason: reason)) }
        }
        agentInfo[agentID] = AgentInfo(
            hostname: hello.hostname, labels: hello.labels, lastSeenAt: Date(), lastHeard: now, instance: hello.instance,
            state: "idle")
        scheduleDemandPush()
        logger.info(
            "agent connected",
            metadata: [
                "agent": "\(agentID.logSafe())", "labels": "\(hello.labels.description.logSafe())", "resumed": "\(held.count)",
            ])
        return .success(welcome(version: version, resume: resume))
    }

    func welcome(version: UInt32, resume: [Gantry_V1_Resume] = []) -> Gantry_V1_Welcome {
        .with {
            $0.version = version
            $0.coordinatorID = configuration.coordinatorID
            $0.heartbeatIntervalMs = UInt32(configuration.heartbeatInterval.milliseconds)
            $0.leaseTtlMs = UInt32(configuration.leaseTTL.milliseconds)
            $0.resume = resume
        }
    }

    /// The connection of `session` ended (EOF, error or replaced).
    public func disconnected(agentID: String, session: AgentSession) {
        guard sessions[agentID] === session else {
            scalerDisconnected(scalerID: agentID, session: session)
            return
        }
        sessions.removeValue(forKey: agentID)
        scheduler.agentDisconnected(id: agentID, now: .now)
        scheduleDemandPush()
        logger.info("agent disconnected", metadata: ["agent": "\(agentID)"])
    }

    /// One message from an authenticated agent.
    public func receive(_ envelope: Gantry_V1_Envelope, from agentID: String, session: AgentSession) {
        guard sessions[agentID] === session else {
            if let scaler = scalers[agentID], scaler.session === session {
                receiveFromScaler(envelope, scalerID: agentID, connection: scaler)
            }
            return
        }
        // The listener validated this already; checking again costs a few comparisons
        // and keeps every path into the core (tests, tools) from trapping on a value.
        do {
            try MessageValidation.validate(envelope, authenticated: true)
        } catch {
            logger.notice("closing an agent connection that sent an out-of-range message", metadata: ["agent": "\(agentID.logSafe())"])
            session.send(.error(error.code, error.description, fatal: true))
            session.close()
            return
        }
        let now = ContinuousClock.now
        scheduler.agentSeen(id: agentID, now: now)
        agentInfo[agentID]?.lastSeenAt = Date()
        agentInfo[agentID]?.lastHeard = now
        do {
            switch envelope.body {
            case .ready(let ready):
                perform(scheduler.agentReady(id: agentID, slots: Int(ready.slots), now: .now))
                scheduleDemandPush()
            case .leaseAck(let ack):
                try leaseAcknowledged(ack, agentID: agentID, session: session)
            case .jobStarted(let started):
                try jobStarted(started, agentID: agentID, session: session)
            case .logChunk(let chunk):
                try logChunk(chunk, agentID: agentID, session: session)
            case .heartbeat(let heartbeat):
                heartbeatReceived(heartbeat, agentID: agentID, session: session)
            case .jobFinished(let finished):
                try jobFinished(finished, agentID: agentID, session: session)
            case .drain:
                scheduler.agentDraining(id: agentID)
                scheduleDemandPush()
                logger.info("agent is draining", metadata: ["agent": "\(agentID.logSafe())"])
            case .error(let error):
                logger.warning(
                    "agent reported an error",
                    metadata: ["agent": "\(agentID.logSafe())", "code": "\(error.code)", "message": "\(error.message.logSafe())"])
            default:
                session.send(.error(.unexpectedMessage, "this message is not valid after the handshake", fatal: false))
            }
        } catch {
            logger.error("failed to handle agent message", metadata: ["agent": "\(agentID)", "error": "\(error)"])
            session.send(.error(.internal, "coordinator could not process the message: \(error)", fatal: false))
        }
    }

    /// Answers once the actor gets to it: the watchdog's proof of life.
    public func isResponsive() -> Bool { true }

    /// Declares silent agents lost. Called at least once a second.
    /// `now` is injectable so tests can move time forward instead of sleeping.
    public func tick(now: ContinuousClock.Instant = .now, wallClock: Date = Date()) {
        perform(scheduler.tick(now: now))
        enforceDeadlines(now: wallClock)
        if !scalers.isEmpty {
            dropSilentScalers(now: now)
            pushDemand(refreshOlderThan: configuration.heartbeatInterval)
        }
    }

    /// How long past `timeout + cancel_grace` the coordinator waits for the agent's own
    /// timeout report before it ends the job itself.
    static let deadlineSlack: TimeInterval = 30

    /// The coordinator's backstop for step timeouts: the agent enforces `timeout`, but if
    /// it cannot (hung, clock trouble, a bug), the job still ends `timed_out` here, the
    /// attempt is fenced off, and the agent is told to kill its copy.
    private func enforceDeadlines(now: Date) {
        for job in jobs.values where job.state == JobState.running {
            guard let timeout = job.timeoutSeconds, let started = job.startedAt,
                // In Double: a row stored before the parser's limits could hold any Int.
                now.timeIntervalSince(started) > Double(timeout) + Double(job.cancelGraceSeconds) + Self.deadlineSlack
            else { continue }
            do {
                logger.warning("job overran its timeout without a report from its agent; ending it", metadata: ["job": "\(job.id)"])
                if let agent = job.agentId { sessions[agent]?.send(Self.cancelFrame(job, reason: "timed out")) }
                try finish(
                    job, agentID: job.agentId ?? "", state: .timedOut, exitStatus: nil,
                    reason: "timed out: the agent did not stop the step within timeout + cancel_grace + \(Int(Self.deadlineSlack)) s")
            } catch {
                logger.error("failed to time out a job", metadata: ["job": "\(job.id)", "error": "\(error)"])
            }
        }
    }

    // MARK: - Cancel

    /// Cancels a job. A job that no agent holds ends `cancelled` at once and is never
    /// leased; a leased or running one is cancelled on its agent (TERM, grace, KILL) and
    /// ends `cancelled` with its log, tail included, when the agent reports. Returns nil
    /// for an unknown job; a finished job is returned unchanged.
    public func cancel(jobID: String, reason: String = "cancelled by user") throws -> API.Job? {
        guard var job = jobs[jobID] else { return try store.job(id: jobID).map(Self.view) }
        switch Optional(job.state) {
        case .leased, .running:
            guard job.cancelReason == nil else { return Self.view(job) }
            job.cancelReason = reason
            try store.update([job])
            jobs[jobID] = job
            if let agent = job.agentId { sessions[agent]?.send(Self.cancelFrame(job, reason: reason)) }
            logger.info("cancelling job on its agent", metadata: ["job": "\(jobID)", "agent": "\(job.agentId ?? "?")"])
            notify(jobID: jobID)
            return Self.view(job)
        default:
            _ = scheduler.dequeue(job: jobID)
            try finish(job, agentID: nil, state: .cancelled, exitStatus: nil, reason: reason)
            return try store.job(id: jobID).map(Self.view)
        }
    }

    /// Cancels every unfinished job of a pipeline in one turn and one transaction: jobs
    /// no agent holds end `cancelled` at once (none of them can unblock another, since
    /// all of them end), held ones are cancelled on their agents. One pass over the
    /// pipeline's jobs, so a pipeline of thousands of steps costs one write, not one per
    /// step with a dependency walk each.
    public func cancel(pipelineID: String, reason: String = "cancelled by user") throws -> API.Pipeline? {
        guard try store.pipelineExists(id: pipelineID) else { return nil }
        let now = Date()
        var changed: [StoredJob] = []
        var signalled: [StoredJob] = []
        var dequeued: Set<String> = []
        for stored in try store.jobs(pipelineID: pipelineID) where !stored.isTerminal {
            guard var job = jobs[stored.id] else { continue }
            switch Optional(job.state) {
            case .leased, .running:
                guard job.cancelReason == nil else { continue }
                job.cancelReason = reason
                signalled.append(job)
            default:
                dequeued.insert(job.id)
                scheduler.release(job: job.id)
                job.state = JobState.cancelled
                job.reason = reason
                job.finishedAt = now
            }
            changed.append(job)
        }
        guard !changed.isEmpty else { return try pipeline(id: pipelineID) }
        try store.update(changed)
        scheduler.dequeue(jobs: dequeued)
        for job in changed {
            if job.isTerminal {
                jobs.removeValue(forKey: job.id)
            } else {
                jobs[job.id] = job
            }
            notify(jobID: job.id)
        }
        for job in signalled {
            if let agent = job.agentId { sessions[agent]?.send(Self.cancelFrame(job, reason: reason)) }
        }
        logger.info(
            "cancelled pipeline", metadata: ["pipeline": "\(pipelineID)", "jobs": "\(changed.count)", "on_agents": "\(signalled.count)"])
        scheduleDemandPush()
        return try pipeline(id: pipelineID)
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

    // MARK: - Message handlers

    /// The job if `attempt` is its current lease held by `agentID`; otherwise tells the
    /// agent its copy is stale (it must kill it) and returns nil. This is the fencing.
    private func currentJob(_ jobID: String, attempt: UInt32, agentID: String, session: AgentSession) -> StoredJob? {
        if let job = jobs[jobID], job.attempt == Int(attempt), job.agentId == agentID,
            job.state == JobState.leased || job.state == JobState.running
        {
            return job
        }
        session.send(
            .error(
                .staleAttempt, "attempt \(attempt) of job \(jobID) is no longer yours: stop it", jobID: jobID,
                attempt: attempt, fatal: false))
        return nil
    }

    private func leaseAcknowledged(_ ack: Gantry_V1_LeaseAck, agentID: String, session: AgentSession) throws {
        guard var job = currentJob(ack.jobID, attempt: ack.attempt, agentID: agentID, session: session) else { return }
        guard !ack.accepted else { return }
        logger.warning("agent refused a lease", metadata: ["job": "\(job.id)", "reason": "\(ack.reason.logSafe())"])
        scheduler.release(job: job.id)
        job.state = JobState.queued
        job.agentId = nil
        job.logLength = 0
        try store.update([job], attempt: attemptRecord(job, agentID: agentID, state: .refused, reason: ack.reason))
        jobs[job.id] = job
        perform(scheduler.enqueue(.init(id: job.id, selector: job.agents)))
    }

    private func jobStarted(_ started: Gantry_V1_JobStarted, agentID: String, session: AgentSession) throws {
        guard var job = currentJob(started.jobID, attempt: started.attempt, agentID: agentID, session: session)
        else { return }
        guard job.state == JobState.leased else { return }
        job.state = JobState.running
        job.startedAt = Date()
        var attempt = attemptRecord(job, agentID: agentID, state: .running, reason: nil)
        attempt.startedAt = job.startedAt
        try store.update([job], attempt: attempt)
        jobs[job.id] = job
        notify(jobID: job.id)
    }

    private func logChunk(_ chunk: Gantry_V1_LogChunk, agentID: String, session: AgentSession) throws {
        guard var job = currentJob(chunk.jobID, attempt: chunk.attempt, agentID: agentID, session: session)
        else { return }
        // `MessageValidation` bounded both to far below `Int.max`; these cannot trap.
        let offset = Int(chunk.offset)
        let end = offset + Int(chunk.rawLength)
        let stored = job.logLength
        func acknowledge(_ length: Int) {
            session.send(
                .with {
                    $0.logAck = .with {
                        $0.jobID = chunk.jobID
                        $0.attempt = chunk.attempt
                        $0.offset = UInt64(length)
                    }
                })
        }
        if end <= stored {
            acknowledge(stored)  // a resend of something already stored
            return
        }
        guard offset == stored else {
            // A gap (or a partial overlap): ask for everything from what we hold.
            session.send(
                .error(
                    .logGap, "log of job \(chunk.jobID) is stored up to byte \(stored), chunk starts at \(offset)",
                    jobID: chunk.jobID, attempt: chunk.attempt, fatal: false))
            acknowledge(stored)
            return
        }
        // The listener inflated the chunk on the connection's task (`LogChunkCheck`)
        // before it got here: the core stores it as it arrived.
        try store.commit(
            StoreBatch([
                .appendLog(.init(jobID: job.id, attempt: job.attempt, offset: offset, rawLength: Int(chunk.rawLength), data: chunk.data))
            ]))
        job.logLength = end
        jobs[job.id] = job
        acknowledge(job.logLength)
        notify(jobID: job.id)
    }

    private func heartbeatReceived(_ heartbeat: Gantry_V1_Heartbeat, agentID: String, session: AgentSession) {
        for running in heartbeat.running {
            _ = currentJob(running.jobID, attempt: running.attempt, agentID: agentID, session: session)
        }
        session.send(.with { $0.heartbeatAck = .with { $0.sentAtUnixMs = heartbeat.sentAtUnixMs } })
    }

    private func jobFinished(_ finished: Gantry_V1_JobFinished, agentID: String, session: AgentSession) throws {
        let acknowledge = {
            session.send(
                .with {
                    $0.finishAck = .with {
                        $0.jobID = finished.jobID
                        $0.attempt = finished.attempt
                    }
                })
        }
        // Idempotent: a repeated finish of the attempt that already finished is just re-acknowledged.
        if jobs[finished.jobID] == nil, let done = try store.job(id: finished.jobID), done.isTerminal,
            done.attempt == Int(finished.attempt), done.agentId == agentID
        {
            acknowledge()
            return
        }
        guard var job = currentJob(finished.jobID, attempt: finished.attempt, agentID: agentID, session: session)
        else { return }
        guard job.logLength >= Int(finished.logLength) else {
            // Not all of the log is here yet: re-acknowledge what is, so the agent resends.
            session.send(
                .with {
                    $0.logAck = .with {
                        $0.jobID = job.id
                        $0.attempt = finished.attempt
                        $0.offset = UInt64(job.logLength)
                    }
                })
            return
        }
        var state: JobState
        switch finished.outcome {
        case .succeeded: state = .succeeded
        case .timedOut: state = .timedOut
        case .cancelled: state = .cancelled
        default: state = .failed
        }
        var reason = finished.message.isEmpty ? nil : finished.message
        if let cancelReason = job.cancelReason, state != .succeeded {
            state = .cancelled
            reason = cancelReason
        }
        job.exitStatus = Int(finished.exitStatus)
        if state == .failed, let rule = Self.retryRule(for: job, lost: false, exitStatus: job.exitStatus) {
            try retry(job, agentID: agentID, rule: rule, attemptState: .failed, reason: reason ?? "failed")
        } else {
            try finish(job, agentID: agentID, state: state, exitStatus: job.exitStatus, reason: reason)
        }
        acknowledge()
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
    private func retry(_ job: StoredJob, agentID: String, rule: RetryRule, attemptState: JobState, reason: String) throws {
        var job = job
        var attempt = attemptRecord(job, agentID: agentID, state: AttemptState(ending: attemptState), reason: reason)
        attempt.exitStatus = job.exitStatus
        attempt.finishedAt = Date()
        scheduler.release(job: job.id)
        job.retryCounts[rule.key, default: 0] += 1
        job.state = JobState.queued
        job.agentId = nil
        job.queuedAt = Date()
        job.reason = "retrying after \(rule.key == "agent_lost" ? "agent_lost" : "exit status \(job.exitStatus ?? -1)") "
            + "(\(job.retryCounts[rule.key]!) of \(rule.limit))"
        try store.update([job], attempt: attempt)
        jobs[job.id] = job
        logger.warning("retrying job", metadata: ["job": "\(job.id)", "rule": "\(rule.key)", "attempt": "\(job.attempt)"])
        notify(jobID: job.id)
        perform(scheduler.enqueue(.init(id: job.id, selector: job.agents)))
    }

    /// Puts a job in a terminal state: records the attempt (if an agent held one), settles
    /// its dependents, commits all of it in one transaction, then leases what it unblocked.
    private func finish(
        _ job: StoredJob, agentID: String?, state: JobState, exitStatus: Int?, reason: String?, attemptState: JobState? = nil
    ) throws {
        var job = job
        job.state = state
        job.exitStatus = exitStatus
        job.reason = reason
        job.finishedAt = Date()
        var attempt: StoredAttempt?
        if let agentID, job.attempt > 0 {
            var record = attemptRecord(job, agentID: agentID, state: attemptState.map { AttemptState(ending: $0) } ?? AttemptState(ending: state), reason: reason)
            record.exitStatus = exitStatus
            record.finishedAt = job.finishedAt
            attempt = record
        }
        scheduler.release(job: job.id)
        let (unblocked, changed) = try settleDependents(of: job)
        try store.update([job] + changed, attempt: attempt)
        jobs.removeValue(forKey: job.id)
        for other in changed {
            if other.state.isTerminal {
                jobs.removeValue(forKey: other.id)
                _ = scheduler.dequeue(job: other.id)
                notify(jobID: other.id)
            } else {
                jobs[other.id] = other
            }
        }
        notify(jobID: job.id)
        logger.info(
            "job finished",
            metadata: ["job": "\(job.id)", "step": "\(job.key)", "state": "\(job.state)", "exit": "\(exitStatus.map(String.init) ?? "-")"])
        var actions: [Scheduler.Action] = []
        for next in unblocked { actions += scheduler.enqueue(.init(id: next.id, selector: next.agents)) }
        perform(actions)
    }

    /// After `job` reached a terminal state: dependents whose dependencies all succeeded
    /// become queued; dependents of a job that did not succeed are cancelled, transitively.
    private func settleDependents(of job: StoredJob) throws -> (unblocked: [StoredJob], changed: [StoredJob]) {
        // Only a waiting job can change; every one of them is in the cache. Without one in
        // this pipeline there is nothing to read (a wide pipeline of independent steps
        // would otherwise reload all its siblings on every finish).
        guard jobs.values.contains(where: { $0.pipelineId == job.pipelineId && $0.state == JobState.waiting })
        else { return ([], []) }
        var byKey: [String: StoredJob] = [:]
        for sibling in try store.jobs(pipelineID: job.pipelineId) { byKey[sibling.key] = jobs[sibling.id] ?? sibling }
        byKey[job.key] = job
        var changed: [String: StoredJob] = [:]
        var progress = true
        while progress {
            progress = false
            for (key, candidate) in byKey where candidate.state == JobState.waiting {
                let dependencies = candidate.dependsOn.compactMap { byKey[$0] }
                if let failed = dependencies.first(where: {
                    $0.state.isTerminal && $0.state != JobState.succeeded
                }) {
                    var cancelled = candidate
                    cancelled.state = JobState.cancelled
                    cancelled.reason = "dependency `\(failed.key)` \(failed.state)"
                    cancelled.finishedAt = Date()
                    byKey[key] = cancelled
                    changed[cancelled.id] = cancelled
                    progress = true
                } else if dependencies.allSatisfy({ $0.state == JobState.succeeded }) {
                    var queued = candidate
                    queued.state = JobState.queued
                    queued.queuedAt = Date()
                    byKey[key] = queued
                    changed[queued.id] = queued
                }
            }
        }
        let unblocked = changed.values.filter { $0.state == JobState.queued }.sorted { $0.position < $1.position }
        return (unblocked, Array(changed.values))
    }

    // MARK: - Actions

    private func perform(_ actions: [Scheduler.Action]) {
        // Every path that queues, leases, releases or loses a job ends here.
        scheduleDemandPush()
        for action in actions {
            do {
                switch action {
                case .lease(let jobID, let agentID):
                    try lease(jobID: jobID, to: agentID)
                case .lost(let jobID, let agentID):
                    try lost(jobID: jobID, agentID: agentID)
                case .forgetAgent(let agentID):
                    logger.warning("agent lost: no heartbeat within the lease TTL", metadata: ["agent": "\(agentID)"])
                    sessions.removeValue(forKey: agentID)?.close()
                    if var info = agentInfo.removeValue(forKey: agentID) {
                        info.state = "lost"
                        rememberLost(agentID, info)
                    }
                }
            } catch {
                logger.error("failed to carry out \(action)", metadata: ["error": "\(error)"])
            }
        }
    }

    private func lease(jobID: String, to agentID: String) throws {
        guard var job = jobs[jobID], let session = sessions[agentID] else {
            scheduler.release(job: jobID)
            if let job = jobs[jobID] { perform(scheduler.enqueue(.init(id: job.id, selector: job.agents))) }
            return
        }
        job.attempt += 1
        job.state = JobState.leased
        job.agentId = agentID
        job.logLength = 0
        job.startedAt = nil
        try store.update([job], attempt: attemptRecord(job, agentID: agentID, state: .leased, reason: nil))
        jobs[jobID] = job
        if let queuedAt = job.queuedAt { metrics.recordQueueWait(Date().timeIntervalSince(queuedAt), selector: job.agents) }
        let source = try pipelineSource(job.pipelineId)
        session.send(
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
                    $0.repository = source.repository
                    $0.commit = source.commit
                    $0.branch = source.branch
                }
            })
        notify(jobID: jobID)
    }

    /// Repository, commit and branch of a pipeline, for its leases: cached, because every
    /// lease needs them and a store read per lease sits on the dispatch path.
    private func pipelineSource(_ id: String) throws -> PipelineSource {
        if let cached = pipelineSources[id] { return cached }
        let pipeline = try store.pipeline(id: id)
        let source = PipelineSource(
            repository: pipeline?.repository ?? "", commit: pipeline?.commit ?? "", branch: pipeline?.branch ?? "")
        cache(source, for: id)
        return source
    }

    private func cache(_ source: PipelineSource, for id: String) {
        // Bounded the simple way: a miss after a reset costs one read.
        if pipelineSources.count >= Self.pipelineSourceCacheLimit { pipelineSources.removeAll(keepingCapacity: true) }
        pipelineSources[id] = source
    }

    private func lost(jobID: String, agentID: String) throws {
        guard let job = jobs[jobID] else { return }
        if let cancelReason = job.cancelReason {
            try finish(job, agentID: agentID, state: .cancelled, exitStatus: nil, reason: cancelReason, attemptState: .lost)
        } else if let rule = Self.retryRule(for: job, lost: true, exitStatus: nil) {
            logger.warning("job lost with its agent", metadata: ["job": "\(jobID)", "agent": "\(agentID)"])
            try retry(job, agentID: agentID, rule: rule, attemptState: .lost, reason: "agent_lost")
        } else {
            logger.error("job lost with its agent; no retries left", metadata: ["job": "\(jobID)"])
            try finish(job, agentID: agentID, state: .failed, exitStatus: nil, reason: "agent_lost", attemptState: .lost)
        }
    }

    private func rememberLost(_ agentID: String, _ info: AgentInfo) {
        if lostAgents.count >= Self.lostAgentLimit,
            let oldest = lostAgents.min(by: { $0.value.lastSeenAt < $1.value.lastSeenAt })?.key
        {
            lostAgents.removeValue(forKey: oldest)
        }
        lostAgents[agentID] = info
    }

    private func attemptRecord(_ job: StoredJob, agentID: String, state: AttemptState, reason: String?) -> StoredAttempt {
        StoredAttempt(
            jobId: job.id, attempt: job.attempt, agentId: agentID, state: state, exitStatus: nil, reason: reason,
            leasedAt: Date(), startedAt: job.startedAt, finishedAt: nil)
    }

    // MARK: - Views

    static func newID() -> String {
        UUID().uuidString.lowercased()
    }

    static func view(_ job: StoredJob) -> API.Job {
        API.Job(
            id: job.id, pipelineId: job.pipelineId, key: job.key, name: job.name, state: job.state.rawValue,
            attempt: job.attempt, agentId: job.agentId, exitStatus: job.exitStatus, reason: job.reason,
            dependsOn: job.dependsOn, createdAt: job.createdAt, startedAt: job.startedAt,
            finishedAt: job.finishedAt, logBytes: job.logLength)
    }

    static func view(_ pipeline: StoredPipeline, jobs: [StoredJob]) -> API.Pipeline {
        let states = jobs.map(\.state)
        let state: String
        if states.allSatisfy({ $0 == JobState.succeeded }) {
            state = "succeeded"
        } else if states.allSatisfy(\.isTerminal) {
            state = "failed"
        } else {
            state = "running"
        }
        return API.Pipeline(
            id: pipeline.id, state: state, createdAt: pipeline.createdAt, repository: pipeline.repository,
            commit: pipeline.commit, branch: pipeline.branch, jobs: jobs.map(view))
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
