import Foundation
import GantryProtocol
import Logging
import NIOCore

/// The coordinator's single writer. It feeds every event (a handshake, an agent's message,
/// an API call, the clock) into the `JobLifecycle` state machine, commits the writes that
/// come back in one transaction, and only then carries out the actions: frames to agents,
/// follower notifications, demand pushes, log lines. It decodes, inflates and parses
/// nothing itself: the listener and the HTTP handlers do that on their own tasks.
///
/// Writes are group-committed (`run`, `flush`): acknowledgements still leave only after the
/// transaction that holds what they acknowledge.
///
/// If a commit fails the coordinator stops (`Configuration.onStoreFailure`): the lifecycle
/// has already moved on in memory, and carrying on would acknowledge what is not stored.
/// The next process reloads the store, and agents resume there, as after `kill -9`.
public actor CoordinatorCore {
    public struct Configuration: Sendable {
        public var coordinatorID: String
        public var heartbeatInterval: Duration
        public var leaseTTL: Duration
        /// Called when the store refuses a commit; the default exits the process.
        public var onStoreFailure: @Sendable (any Error) -> Void
        /// Deployment environments' protection rules (`serve --environments FILE`).
        public var environments: EnvironmentRules = .none

        public init(
            coordinatorID: String = "gantry", heartbeatInterval: Duration = .seconds(5), leaseTTL: Duration? = nil,
            onStoreFailure: @escaping @Sendable (any Error) -> Void = CoordinatorCore.exitOnStoreFailure
        ) {
            self.coordinatorID = coordinatorID
            self.heartbeatInterval = heartbeatInterval
            self.leaseTTL = leaseTTL ?? heartbeatInterval * 3
            self.onStoreFailure = onStoreFailure
        }
    }

    /// Fail-stop: `EX_SOFTWARE`, so systemd's `Restart=on-failure` starts a fresh process.
    public static let exitOnStoreFailure: @Sendable (any Error) -> Void = { _ in exit(70) }

    public let configuration: Configuration
    public nonisolated let metrics: CoordinatorMetrics
    /// Decrypted secrets: read when a lease is sent and when a pipeline is submitted,
    /// changed by the API's secret routes.
    public nonisolated let secrets: SecretVault
    /// Read by the API and the dashboard on their own tasks; written only by this actor.
    public nonisolated let store: any CoordinatorStore
    /// Which notification events any endpoint wants (Notifications/): read at each
    /// commit, so none are written while nobody listens.
    public nonisolated let notificationInterest = NotificationInterest()
    let logger: Logger
    var lifecycle: JobLifecycle
    var sessions: [String: AgentSession] = [:]
    var watchers: [String: [UUID: AsyncStream<Void>.Continuation]] = [:]
    /// Connected autoscalers by id (see `CoordinatorCore+Scalers.swift`).
    var scalers: [String: ScalerConnection] = [:]
    var demandPushPending = false
    /// Set once a commit failed: nothing more is acknowledged.
    var stopped = false
    /// Output of turns not yet committed (see `run`).
    var pending = LifecycleOutput()
    /// Writes one group commit may hold: thousands of events' worth, one transaction of a
    /// few milliseconds, and a bound on what waits in memory for it.
    static let maximumPendingWrites = 4096
    var flushScheduled = false

    var scheduler: Scheduler { lifecycle.scheduler }
    var jobs: [String: StoredJob] { lifecycle.jobs }

    public init(
        store: any CoordinatorStore, configuration: Configuration, logger: Logger, metrics: CoordinatorMetrics = CoordinatorMetrics(),
        secrets: SecretVault = .empty()
    ) throws {
        self.store = store
        self.secrets = secrets
        self.metrics = metrics
        self.configuration = configuration
        self.logger = logger
        let unfinished = try store.unfinishedJobs()
        var pipelines: [String: PipelineProgress] = [:]
        for id in Set(unfinished.map(\.pipelineId)) {
            guard let pipeline = try store.pipeline(id: id) else { continue }
            pipelines[id] = PipelineProgress(pipeline: pipeline, jobs: try store.jobs(pipelineID: id))
        }
        self.lifecycle = JobLifecycle(
            configuration: .init(heartbeatInterval: configuration.heartbeatInterval, leaseTTL: configuration.leaseTTL),
            unfinished: unfinished, pipelines: pipelines, now: .now)
    }

    /// Takes a turn's output. Every event ends here.
    ///
    /// Group commit: the output joins what earlier turns left pending, and one `flush`
    /// commits all of it in one transaction, then carries out the actions in order. The
    /// flush runs as the actor's next job after whatever is already waiting on it, so
    /// under load one transaction covers many events (and a page the jobs table shares
    /// among them is written once), and when idle an event waits one actor hop. Output
    /// without writes, with nothing pending, is carried out at once.
    func run(_ output: LifecycleOutput) {
        guard !stopped else { return }
        if output.writes.isEmpty && pending.writes.isEmpty && pending.actions.isEmpty {
            perform(output.actions)
            return
        }
        pending.writes.append(contentsOf: output.writes)
        pending.actions += output.actions
        // Bounded: if the flush job is kept waiting behind a flood of events, the batch
        // (and the acknowledgements held back with it) commits here instead of growing.
        if pending.writes.writes.count >= Self.maximumPendingWrites {
            flush()
            return
        }
        guard !flushScheduled else { return }
        flushScheduled = true
        Task { self.flush() }
    }

    /// Commits everything pending, then carries out its actions. API calls flush before
    /// they answer, so a caller never sees a change that is not stored.
    public func flush() {
        flushScheduled = false
        guard !stopped, !pending.writes.isEmpty || !pending.actions.isEmpty else { return }
        let output = pending
        pending = LifecycleOutput()
        var writes = output.writes
        let events = NotificationEvents.scan(writes, wanted: notificationInterest.current, now: Date()) {
            self.lifecycle.pipelines[$0] == nil
        }
        if !events.isEmpty { writes.append(.notificationEvents(events)) }
        do {
            try store.commit(writes)
        } catch {
            stopped = true
            logger.critical(
                "the store refused a commit; stopping so a fresh process reloads a consistent state",
                metadata: ["error": "\(error)"])
            for session in sessions.values { session.close() }
            configuration.onStoreFailure(error)
            return
        }
        // One pass, O(1) per write: a histogram observation per ended job and a counter
        // per log chunk, after the commit so only what is stored is counted.
        metrics.observe(committed: output.writes)
        perform(output.actions)
    }

    private func perform(_ actions: [LifecycleAction]) {
        for action in actions {
            switch action {
            case .send(let envelope, let agentID):
                guard let session = sessions[agentID] else { continue }
                session.send(withSecrets(envelope, for: session))
            case .closeConnection(let agentID):
                sessions.removeValue(forKey: agentID)?.close()
            case .notify(let jobID):
                for continuation in watchers[jobID]?.values ?? [:].values { continuation.yield() }
            case .demandChanged:
                scheduleDemandPush()
            case .queueWait(let seconds, let selector):
                metrics.recordQueueWait(seconds, selector: selector)
            case .log(let level, let message, let metadata):
                logger.log(level: level, "\(message)", metadata: metadata)
            }
        }
    }

    /// Runs an API event's output and commits it (with anything pending) before answering.
    func runNow(_ output: LifecycleOutput) throws {
        run(output)
        flush()
        if stopped { throw CoordinatorStopped() }
    }

    // MARK: - Pipelines (HTTP API)

    /// Parses, stores and enqueues a pipeline. Nothing is stored if the file is invalid.
    ///
    /// Parsing, evaluating `if:` conditions and building the rows run on the caller's
    /// task, outside the actor: YAML is the most expensive input the coordinator takes,
    /// and the single writer must not wait. `permit` may refuse the pipeline by what it
    /// contains (the API checks who may deploy to its environments) before anything is
    /// stored. `source`, `rebuildOf` and `submittedBy` (the caller's identity, whose
    /// deploy permission steps uploaded into the pipeline need) are set by the
    /// coordinator, never by the caller's body.
    public nonisolated func submit(
        _ request: API.SubmitPipeline, source: String = "api", rebuildOf: String? = nil, submittedBy: String? = nil,
        permit: (PipelineDefinition) throws -> Void = { _ in }
    ) async throws -> API.Pipeline {
        try SubmissionCheck.check(request)
        let definition = try PipelineParser(file: request.file ?? "pipeline.yml", promotes: request.fromPipeline != nil)
            .parse(request.yaml)
        return try await submit(
            request, definition: definition, source: source, rebuildOf: rebuildOf, submittedBy: submittedBy, permit: permit)
    }

    /// Submits `definition` (parsed from `request.yaml`, or built by the coordinator: a
    /// rollback) after every check a submission gets.
    nonisolated func submit(
        _ request: API.SubmitPipeline, definition: PipelineDefinition, source: String, rebuildOf: String? = nil,
        submittedBy: String?, permit: (PipelineDefinition) throws -> Void
    ) async throws -> API.Pipeline {
        try permit(definition)
        try configuration.environments.check(definition, branch: request.branch ?? "")
        try SecretRequirements.check(definition, request: request, vault: secrets)
        try checkPromotion(request, definition)
        let (built, created) = try Self.rows(
            for: request, definition: definition, source: source, rebuildOf: rebuildOf,
            environments: configuration.environments, now: Date())
        var pipeline = built
        pipeline.submittedBy = submittedBy
        return try await submit(pipeline, jobs: created)
    }

    /// Stores and enqueues rows built by `rows(for:definition:now:)`.
    func submit(_ pipeline: StoredPipeline, jobs created: [StoredJob]) throws -> API.Pipeline {
        try runNow(lifecycle.submit(pipeline, jobs: created, now: pipeline.createdAt))
        return Self.view(pipeline, jobs: created.map { lifecycle.jobs[$0.id] ?? $0 })
    }

    /// The rows of a new pipeline: one job per expanded job of each step (matrix,
    /// parallelism), `skipped` if its step's `if:` is false, `queued` without
    /// dependencies, else `waiting`. Throws a `PipelineError` at the condition's place if
    /// a condition does not evaluate.
    static func rows(
        for request: API.SubmitPipeline, definition: PipelineDefinition, source: String = "api", rebuildOf: String? = nil,
        environments: EnvironmentRules = .none, now: Date
    ) throws -> (StoredPipeline, [StoredJob]) {
        var pipeline = StoredPipeline(
            id: newID(), file: request.file ?? "pipeline.yml", yaml: request.yaml, repository: request.repository ?? "",
            commit: request.commit ?? "", branch: request.branch ?? "", env: request.env ?? [:], createdAt: now)
        pipeline.tag = request.tag ?? ""
        pipeline.message = request.message ?? ""
        pipeline.source = source
        pipeline.rebuildOf = rebuildOf
        pipeline.artifactsFrom = request.fromPipeline ?? definition.artifactsFrom
        let jobs = try jobRows(for: definition, pipeline: pipeline, file: pipeline.file, environments: environments, now: now)
        return (pipeline, jobs)
    }

    /// The job rows of `definition`'s steps in `pipeline`, positions from `firstPosition`:
    /// a new pipeline's (`rows`) or those uploaded into a running one. The file's `env`
    /// is merged under the submission's; `if:` sees the pipeline's build.
    static func jobRows(
        for definition: PipelineDefinition, pipeline: StoredPipeline, file: String, environments: EnvironmentRules,
        firstPosition: Int = 0, now: Date
    ) throws -> [StoredJob] {
        let pipelineEnv = definition.env.merging(pipeline.env) { $1 }
        let context = StepConditions.context(for: pipeline, env: pipelineEnv)
        var jobs: [StoredJob] = []
        var conditionCost = 0
        for step in definition.steps {
            let runs = try StepConditions.holds(step.condition, in: context, file: file, spent: &conditionCost)
            for expanded in step.jobs {
                let state: JobState =
                    !runs ? .skipped : !step.dependsOn.isEmpty ? .waiting : step.block == nil ? .queued : .blocked
                var job = StoredJob(
                    id: newID(), pipelineId: pipeline.id, position: firstPosition + jobs.count, key: step.key, name: expanded.name,
                    state: state, commands: expanded.commands, env: pipelineEnv.merging(expanded.env) { $1 },
                    agents: expanded.agents, dependsOn: step.dependsOn, timeoutSeconds: step.timeoutSeconds,
                    cancelGraceSeconds: step.cancelGraceSeconds, retry: step.retry, retryCounts: [:], cancelReason: nil,
                    attempt: 0, agentId: nil, exitStatus: nil, reason: runs ? nil : "condition is false: \(step.condition?.text ?? "")",
                    createdAt: now, queuedAt: state == .queued ? now : nil, startedAt: nil,
                    finishedAt: runs ? nil : now, logLength: 0, secrets: step.secrets, environment: step.environment)
                job.when = step.when
                job.softFail = step.softFail
                job.priority = step.priority
                // A step's own group wins; otherwise an environment that deploys one at a
                // time puts its deploying jobs in `environment:NAME`.
                job.concurrency = expanded.concurrency ?? environments.concurrency(for: step.environment)
                job.matrix = expanded.matrix
                job.block = step.block
                job.checkout = step.checkout == .default ? nil : step.checkout
                job.transfers = step.transfers
                job.outcome = runs ? nil : .passed
                jobs.append(job)
            }
        }
        return jobs
    }

    /// Reads run on the caller's task, off the single writer: decoding a page of rows
    /// costs milliseconds that dispatch must not wait behind. They commit what is pending
    /// first, so they never see the store behind what an agent or caller was told.
    public nonisolated func pipeline(id: String) async throws -> API.Pipeline? {
        await flush()
        guard let pipeline = try store.pipeline(id: id) else { return nil }
        return Self.view(pipeline, jobs: try store.jobs(pipelineID: id))
    }

    public nonisolated func job(id: String) async throws -> StoredJob? {
        await flush()
        return try store.job(id: id)
    }

    public nonisolated func listJobs(states: [JobState]?, limit: Int) async throws -> [API.Job] {
        await flush()
        return try store.jobs(states: states, limit: limit).map(Self.view)
    }

    public func listAgents() -> [API.Agent] {
        let lost = lifecycle.lostAgents.filter { scheduler.agents[$0.key] == nil }.map { id, info in
            API.Agent(
                id: id, labels: info.labels, state: "lost", hostname: info.hostname, connected: false, runningJobs: [],
                lastSeenAt: info.lastSeenAt)
        }
        return (scheduler.agents.values.map { agent in
            let info = lifecycle.agentInfo[agent.id]
            return API.Agent(
                id: agent.id, labels: agent.labels, state: agent.state.rawValue, hostname: info?.hostname ?? "",
                connected: agent.connected, runningJobs: agent.running.sorted(), lastSeenAt: info?.lastSeenAt,
                notReadyReason: agent.connected ? info?.notReadyReason : nil)
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
        flush()
        for continuation in watchers.values.flatMap(\.values) { continuation.finish() }
        watchers.removeAll()
        for session in sessions.values { session.close() }
        for scaler in scalers.values { scaler.session.close() }
    }

    private func unwatch(jobID: String, token: UUID) {
        watchers[jobID]?.removeValue(forKey: token)
        if watchers[jobID]?.isEmpty == true { watchers.removeValue(forKey: jobID) }
    }

    // MARK: - Agent connections

    public enum HelloRejection: Error, Sendable {
        case refused(Gantry_V1_ErrorCode, String)
    }

    /// Checks a handshake and registers the session. `certificateName` is the common name
    /// of the agent's verified client certificate. `now` is injectable so tests can move
    /// time forward instead of sleeping.
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
        switch lifecycle.agentConnected(hello, now: now, wallClock: Date()) {
        case .failure(let refusal):
            logger.warning(
                "refused a second connection for a connected agent id", metadata: ["agent": "\(hello.agentID.logSafe())"])
            return .failure(.refused(refusal.code, refusal.message))
        case .success(let connection):
            if connection.replacesLiveConnection { sessions[hello.agentID]?.close() }
            session.protocolVersion = version
            sessions[hello.agentID] = session
            run(connection.output)
            flush()
            return .success(welcome(version: version, resume: connection.resume))
        }
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
        run(lifecycle.agentDisconnected(agentID, now: .now))
    }

    /// One message from an authenticated agent, already validated and (a log chunk)
    /// inflate-checked by the listener on the connection's task.
    public func receive(_ envelope: Gantry_V1_Envelope, from agentID: String, session: AgentSession) {
        guard sessions[agentID] === session else {
            if let scaler = scalers[agentID], scaler.session === session {
                receiveFromScaler(envelope, scalerID: agentID, connection: scaler)
            }
            return
        }
        // Checking again costs a few comparisons and keeps every path into the core
        // (tests, tools) from trapping on a value.
        do {
            try MessageValidation.validate(envelope, authenticated: true)
        } catch {
            logger.notice("closing an agent connection that sent an out-of-range message", metadata: ["agent": "\(agentID.logSafe())"])
            session.send(.error(error.code, error.description, fatal: true))
            session.close()
            return
        }
        let now = ContinuousClock.now
        let wallClock = Date()
        lifecycle.agentHeard(agentID, now: now, wallClock: wallClock)
        switch envelope.body {
        case .ready(let ready):
            run(lifecycle.agentReady(agentID, slots: Int(ready.slots), now: now, wallClock: wallClock))
        case .leaseAck(let ack):
            run(lifecycle.leaseAcknowledged(ack, from: agentID, now: wallClock))
        case .jobStarted(let started):
            run(lifecycle.jobStarted(started, from: agentID, now: wallClock))
        case .logChunk(let chunk):
            run(lifecycle.logChunk(chunk, from: agentID))
        case .heartbeat(let heartbeat):
            run(lifecycle.heartbeat(heartbeat, from: agentID))
        case .jobFinished(let finished):
            // A repeat of a finish already committed (its ack was lost) names a job the
            // lifecycle let go: the store answers, before the event, not in the middle.
            var alreadyFinished: StoredJob?
            if lifecycle.jobs[finished.jobID] == nil {
                flush()
                do {
                    alreadyFinished = try store.job(id: finished.jobID)
                } catch {
                    logger.error("could not read a finished job", metadata: ["job": "\(finished.jobID)", "error": "\(error)"])
                    session.send(.error(.internal, "coordinator could not read job \(finished.jobID): try again", fatal: false))
                    return
                }
            }
            run(lifecycle.jobFinished(finished, from: agentID, alreadyFinished: alreadyFinished, now: wallClock))
        case .drain:
            run(lifecycle.agentDraining(agentID))
        case .error(let error):
            logger.warning(
                "agent reported an error",
                metadata: ["agent": "\(agentID.logSafe())", "code": "\(error.code)", "message": "\(error.message.logSafe())"])
        default:
            session.send(.error(.unexpectedMessage, "this message is not valid after the handshake", fatal: false))
        }
    }

    /// Answers once the actor gets to it: the watchdog's proof of life.
    public func isResponsive() -> Bool { true }

    /// Declares silent agents lost and overdue jobs timed out. Called at least once a
    /// second. `now` is injectable so tests can move time forward instead of sleeping.
    public func tick(now: ContinuousClock.Instant = .now, wallClock: Date = Date()) {
        run(lifecycle.tick(now: now, wallClock: wallClock))
        if !scalers.isEmpty {
            dropSilentScalers(now: now)
            pushDemand(refreshOlderThan: configuration.heartbeatInterval)
        }
    }

    // MARK: - Cancel

    /// Cancels a job (see `JobLifecycle.cancel(job:reason:now:)`). Returns nil for an
    /// unknown job; a finished job is returned unchanged.
    public func cancel(jobID: String, reason: String = "cancelled by user") throws -> API.Job? {
        guard let (job, output) = lifecycle.cancel(job: jobID, reason: reason, now: Date()) else {
            return try store.job(id: jobID).map(Self.view)
        }
        try runNow(output)
        return Self.view(job)
    }

    /// Cancels every unfinished job of a pipeline in one turn and one transaction.
    public func cancel(pipelineID: String, reason: String = "cancelled by user") throws -> API.Pipeline? {
        guard try store.pipelineExists(id: pipelineID) else { return nil }
        try runNow(lifecycle.cancel(pipeline: pipelineID, reason: reason, now: Date()))
        guard let pipeline = try store.pipeline(id: pipelineID) else { return nil }
        return Self.view(pipeline, jobs: try store.jobs(pipelineID: pipelineID))
    }

    // MARK: - Views

    static func newID() -> String {
        UUID().uuidString.lowercased()
    }

    static func view(_ job: StoredJob) -> API.Job {
        var view = API.Job(
            id: job.id, pipelineId: job.pipelineId, key: job.key, name: job.name, state: job.state.rawValue,
            attempt: job.attempt, agentId: job.agentId, exitStatus: job.exitStatus, reason: job.reason,
            dependsOn: job.dependsOn, createdAt: job.createdAt, startedAt: job.startedAt,
            finishedAt: job.finishedAt, logBytes: job.logLength)
        view.outcome = job.isTerminal ? (job.outcome ?? JobOutcome(state: job.state)).rawValue : nil
        view.softFailed = job.softFailed ? true : nil
        view.priority = job.priority == 0 ? nil : job.priority
        view.concurrencyGroup = job.concurrency?.group
        view.matrix = job.matrix.isEmpty ? nil : job.matrix
        view.failure = job.failure
        return view
    }

    /// The pipeline with its jobs; its state is `PipelineState.derive`'s.
    static func view(_ pipeline: StoredPipeline, jobs: [StoredJob]) -> API.Pipeline {
        let state = PipelineState.derive(jobs.lazy.map { (state: $0.state, outcome: $0.outcome) }).rawValue
        var view = API.Pipeline(
            id: pipeline.id, state: state, createdAt: pipeline.createdAt, repository: pipeline.repository,
            commit: pipeline.commit, branch: pipeline.branch, jobs: jobs.map(view), tag: pipeline.tag.isEmpty ? nil : pipeline.tag,
            message: pipeline.message.isEmpty ? nil : pipeline.message, source: pipeline.source, rebuildOf: pipeline.rebuildOf)
        view.artifactsFrom = pipeline.artifactsFrom
        return view
    }
}

/// The coordinator stopped taking changes after its store refused a commit.
public struct CoordinatorStopped: Error, CustomStringConvertible {
    public var description: String { "the coordinator is stopping: its store refused a write" }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
