import GantryProtocol
import Logging
import NIOCore
import NIOSSL

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The agent: takes leases over its `AgentConnection` (which reconnects with backoff),
/// runs them, streams their logs and reports their outcome until acknowledged.
///
/// What survives a dropped connection: running steps keep running, their logs stay in the
/// spool, and the final status is kept; the next handshake lists the attempts held, the
/// coordinator answers with the offset it has, and streaming resumes from there.
public actor AgentRuntime: AgentConnectionOwner {
    public struct Options: Sendable {
        public var coordinator: HostPort
        /// More coordinators sharing one database: after a connection ends (or cannot be
        /// made) the agent dials the next address in turn, so losing the one it talks to
        /// costs a reconnect, not its jobs.
        public var alternateCoordinators: [HostPort] = []
        public var agentID: String
        public var labels: [String: String]
        public var capacity: Int
        public var oneShot: Bool
        public var workRoot: String
        public var spoolDirectory: String
        public var keepWorkDirs: Bool
        /// nil: use the interval the coordinator announces.
        public var heartbeatInterval: Duration?
        public var streamer: LogStreamer.Configuration
        public var backoff: Backoff
        /// Run each job in its own cgroup where possible (see `JobCgroup`).
        public var useCgroups: Bool = true
        /// The unprivileged user steps run as (`--step-user`); nil runs them as the agent's
        /// own user, which `run()` warns about loudly.
        public var stepUser: StepUser?
        /// The agent's state directory, named in the warning about same-user steps, and
        /// where a renewed certificate is installed.
        public var stateDirectory: String?
        /// When to renew the host's certificate; nil never renews (nor without a state
        /// directory).
        public var renewal: RenewalSchedule? = RenewalSchedule()
        /// The host's git mirrors (`--git-mirrors`, default `STATE/git-mirrors`); nil: a
        /// lease that asks for a checkout fails with `checkout_failed`.
        public var gitMirrors: GitMirrors?
        /// Below it on the work root's (or state directory's) filesystem the agent takes no
        /// new jobs and says why (`--min-free-space`, `FreeSpaceFloor`).
        public var minFreeSpace: FreeSpaceFloor = .standard
        /// How often the floor is checked after the first check (before the first `Ready`).
        public var freeSpaceCheckInterval: Duration = .seconds(10)
        /// How a filesystem is measured (`statvfs`); tests put a disk that fills and empties.
        public var measureSpace: @Sendable (String) -> FreeSpaceFloor.Space? = { FreeSpaceFloor.space(of: $0) }

        public init(
            coordinator: HostPort, agentID: String, labels: [String: String], capacity: Int = 1, oneShot: Bool = false,
            workRoot: String, spoolDirectory: String, keepWorkDirs: Bool = false, heartbeatInterval: Duration? = nil,
            streamer: LogStreamer.Configuration = .init(), backoff: Backoff = Backoff()
        ) {
            self.coordinator = coordinator
            self.agentID = agentID
            self.labels = labels
            self.capacity = capacity
            self.oneShot = oneShot
            self.workRoot = workRoot
            self.spoolDirectory = spoolDirectory
            self.keepWorkDirs = keepWorkDirs
            self.heartbeatInterval = heartbeatInterval
            self.streamer = streamer
            self.backoff = backoff
        }
    }

    final class RunningJob {
        let spec: JobRunner.Spec
        let spool: LogSpool
        let streamer: LogStreamer
        let control: ProcessGroupControl
        var tasks: [Task<Void, Never>] = []
        var result: JobRunner.Result?
        /// `WORKROOT/<job>-<attempt>.lock`, held until the attempt is forgotten, so the next
        /// agent on this work root knows whether it may reclaim the attempt's leftovers
        /// (`LeftoverReclaim`); nil when it could not be taken (then they are kept).
        var lock: AttemptLock?
        /// The coordinator no longer considers this attempt ours: kill, report nothing.
        var aborted = false

        init(spec: JobRunner.Spec, spool: LogSpool, streamer: LogStreamer, control: ProcessGroupControl) {
            self.spec = spec
            self.spool = spool
            self.streamer = streamer
            self.control = control
        }
    }

    public let options: Options
    let logger: Logger
    let runner: JobRunner
    let connection: AgentConnection
    /// Frames for the coordinator; sends fail (and are redone after the next handshake)
    /// while disconnected.
    var outbound: OutboundQueue { connection.outbound }
    let reaper = OrphanReaper()
    /// Drawn once per process and sent in every Hello: the coordinator lets a reconnect
    /// that carries it take over this agent's old connection at once, and refuses a second
    /// process that claims the same id (`ERROR_CODE_AGENT_ID_IN_USE`).
    let instance = Data((0..<16).map { _ in UInt8.random(in: 0...255) })
    var jobs: [String: RunningJob] = [:]
    var leasesTaken = 0
    var draining = false
    var finishedForGood = false
    /// Renews the host's certificate once it is due (protocol version 3 and later).
    var renewer: CertificateRenewer?
    /// The protocol version of the current connection (0 while disconnected).
    var negotiatedVersion: UInt32 = 0
    /// Why this agent takes no new jobs although it could (below its free-space floor);
    /// sent in every heartbeat (`not_ready_reason`) so `gantry agents` shows it.
    var notReadyReason: String?
    /// `SPOOL.lock`, held for the process's life: this slot's spool dir is in use.
    var spoolLock: AttemptLock?

    /// `reloadTLS` is called before each connection, so a certificate renewed since (by
    /// this process or another slot of the host) is used; nil keeps `tls`.
    public init(
        options: Options, tls: TLSConfiguration, reloadTLS: (@Sendable () throws -> TLSConfiguration)? = nil, logger: Logger
    ) {
        self.options = options
        self.logger = logger
        self.connection = AgentConnection(
            coordinators: [options.coordinator] + options.alternateCoordinators, tls: tls, reloadTLS: reloadTLS,
            configuration: .init(backoff: options.backoff, heartbeatOverride: options.heartbeatInterval), logger: logger)
        if let state = options.stateDirectory, let schedule = options.renewal,
            let name = options.agentID.split(separator: "/").first.map(String.init)
        {
            self.renewer = CertificateRenewer(state: AgentStateDirectory(path: state), name: name, schedule: schedule)
        }
        self.runner = JobRunner(
            agentID: options.agentID, workRoot: options.workRoot, keepWorkDirs: options.keepWorkDirs,
            stepUser: options.stepUser, caCertificate: options.stateDirectory.map { AgentStateDirectory(path: $0).caCertificate },
            gitMirrors: options.gitMirrors)
    }

    /// Runs until the agent is done: one job in one-shot mode, or drained.
    public func run() async throws {
        for failure in ProcessHardening.apply(keepCapabilitiesForSetpriv: options.stepUser != nil) {
            logger.warning("process hardening incomplete", metadata: ["error": "\(failure)"])
        }
        if let stepUser = options.stepUser {
            guard ProcessHardening.canSwitchUsers else {
                throw IsolationError.stepUser(
                    "the agent cannot run steps as \(stepUser.name): it needs to run as root or with CAP_SETUID and CAP_SETGID in its ambient set (systemd AmbientCapabilities=)")
            }
            logger.info("steps run as their own user", metadata: ["step_user": "\(stepUser)"])
        } else {
            let reason = ProcessHardening.canSwitchUsers ? "no --step-user given" : "the agent cannot switch users and no --step-user given"
            logger.warning(
                "\(ProcessHardening.sameUserWarning(reason: reason, stateDirectory: options.stateDirectory ?? "the state dir", workRoot: options.workRoot))")
        }
        for (path, mode) in [(options.workRoot, runner.workRootMode), (options.spoolDirectory, AgentDirectories.privateMode)] {
            if let warning = try AgentDirectories.ensure(path, mode: mode) {
                logger.warning("directory mode not enforced", metadata: ["warning": "\(warning)"])
            }
        }
        if let state = options.stateDirectory {
            for path in [state, state + "/spool"] where FileManager.default.fileExists(atPath: path) {
                if let warning = try AgentDirectories.ensure(path, mode: AgentDirectories.privateMode) {
                    logger.warning("directory mode not enforced", metadata: ["warning": "\(warning)"])
                }
            }
        }
        await reclaimLeftovers()
        checkFreeSpace()
        // Mirrors someone else can write would be trusted by every checkout on the host:
        // refuse to start rather than warn (each checkout checks again).
        if let mirrors = options.gitMirrors { try AgentDirectories.ensureOwned(mirrors.directory) }
        if !JobProcesses.becomeSubreaper() {
            logger.warning("cannot become a child subreaper: processes that leave a step's session may outlive it")
        }
        if !options.useCgroups {
            logger.notice("per-job cgroups disabled (--no-cgroups)")
        } else if let base = JobCgroup.base {
            let stale = JobCgroup.removeStale()
            logger.info("running each job in its own cgroup", metadata: ["under": "\(base)", "stale_removed": "\(stale)"])
        } else {
            logger.notice(
                "per-job cgroups unavailable (no writable cgroup2 hierarchy; under systemd set Delegate=yes): using process groups and environment markers")
        }
        let reaper = self.reaper
        let reaping = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(10))
                reaper.reap()
            }
        }
        defer { reaping.cancel() }
        let interval = options.freeSpaceCheckInterval
        let checking = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await self?.checkFreeSpace()
            }
        }
        defer { checking.cancel() }
        try await connection.run(for: self)
        logger.info("agent exiting", metadata: ["jobs_taken": "\(leasesTaken)"])
    }

    // MARK: - Disk

    /// What a killed agent left in this work root and this slot's spool (`LeftoverReclaim`):
    /// never what a live slot, or an attempt this process holds, still needs.
    private func reclaimLeftovers() async {
        // Waits a little for the slot's lock: a sibling slot starting at the same moment may
        // hold it for as long as it takes to decide this slot's spool dir is not in use.
        for attempt in 0..<50 where spoolLock == nil {
            spoolLock = AttemptLock.take(options.spoolDirectory + ".lock")
            if spoolLock == nil, attempt < 49 { try? await Task.sleep(for: .milliseconds(20)) }
        }
        let held = Set(jobs.values.map { "\($0.spec.jobID)-\($0.spec.attempt)" })
        var spool = LeftoverReclaim.Reclaimed()
        if spoolLock != nil {
            _ = try? AgentDirectories.ensure(options.spoolDirectory, mode: AgentDirectories.privateMode)
            let underState = options.stateDirectory.map {
                AgentDirectories.parentDirectory(of: options.spoolDirectory) == AgentStateDirectory(path: $0).spool
            } ?? false
            spool = LeftoverReclaim.reclaimSpool(own: options.spoolDirectory, held: held, siblings: underState)
        } else {
            logger.warning(
                "another process holds this slot's spool lock (same --slot twice?): its spool is left alone",
                metadata: ["spool": "\(options.spoolDirectory)"])
        }
        if options.keepWorkDirs {
            logger.notice("--keep-work-dirs: leftovers in the work root are not reclaimed")
        }
        let work = options.keepWorkDirs ? LeftoverReclaim.Reclaimed() : LeftoverReclaim.reclaimWorkRoot(options.workRoot, held: held)
        if let mirrors = options.gitMirrors, let maximumIdle = mirrors.maximumIdle {
            let pruned = MirrorPrune.prune(mirrors.directory, maximumIdle: maximumIdle)
            if pruned.mirrors > 0 {
                logger.info(
                    "removed git mirrors no checkout used lately",
                    metadata: ["mirrors": "\(pruned.mirrors)", "bytes": "\(pruned.bytes)", "max_idle": "\(maximumIdle)"])
            }
        }
        logger.info(
            "reclaimed what earlier agents left behind",
            metadata: [
                "work_root_entries": "\(work.entries)", "spool_entries": "\(spool.entries)",
                "bytes": "\(work.bytes + spool.bytes)",
            ])
    }

    /// Measures the work root's filesystem (and the state directory's, if another) against
    /// the floor; on a change, withdraws or renews this agent's offer and tells the
    /// coordinator at once (a heartbeat out of turn) rather than at the next one.
    func checkFreeSpace() {
        var reason: String?
        if options.minFreeSpace != .disabled {
            var paths = [options.workRoot]
            if let state = options.stateDirectory, FreeSpaceFloor.device(of: state) != FreeSpaceFloor.device(of: options.workRoot) {
                paths.append(state)
            }
            reason = options.minFreeSpace.problem(paths.compactMap(options.measureSpace))
        }
        guard reason != notReadyReason else { return }
        notReadyReason = reason
        if let reason {
            logger.warning("not taking new jobs", metadata: ["why": "\(reason)", "running": "\(jobs.count)"])
        } else {
            logger.notice("free space is above the floor again: taking jobs")
        }
        guard negotiatedVersion > 0 else { return }
        if reason != nil {
            // Withdraws what was offered: `Ready` sets the free slots, it does not add to them.
            outbound.send(.with { $0.ready = .with { $0.slots = 0 } })
        } else {
            offerSlots()
        }
        heartbeatNow()
    }

    /// A heartbeat out of turn, so the coordinator learns a changed `not_ready_reason` now
    /// rather than an interval later (it takes heartbeats at any time).
    private func heartbeatNow() {
        Task { [weak self] in
            guard let self else { return }
            let heartbeat = await self.heartbeat()
            await self.outbound.send(.with { $0.heartbeat = heartbeat })
        }
    }

    /// First SIGTERM/SIGINT (or the coordinator's `Drain`): take no more jobs, finish the
    /// running ones, then exit.
    public func drain() async {
        guard !draining else { return }
        draining = true
        logger.info("draining: finishing running jobs, taking no new ones", metadata: ["running": "\(jobs.count)"])
        outbound.send(.with { $0.drain = .with { $0.reason = "agent received a shutdown signal" } })
        await exitIfIdle()
    }

    /// Second signal: cancel running jobs (TERM, grace, KILL), report them, then exit.
    public func cancelAll(reason: String) async {
        await drain()
        for job in jobs.values { job.control.stop(.cancelled(reason)) }
    }

    // MARK: - Connection

    func connected(_ welcome: Gantry_V1_Welcome, connectedIn: Duration) async {
        let coordinator = await connection.coordinator
        logger.info(
            "connected to the coordinator",
            metadata: ["coordinator": "\(coordinator)", "version": "\(welcome.version)", "handshake": "\(connectedIn)"])
        negotiatedVersion = welcome.version
        await resume(welcome.resume)
        offerSlots()
        if notReadyReason != nil { heartbeatNow() }
        renewCertificateIfDue(newConnection: true)
        await exitIfIdle()
    }

    func disconnected() {
        negotiatedVersion = 0
        renewer?.connectionLost()
    }

    /// Asks for a new certificate when the current one is due (`CertificateRenewer`);
    /// only coordinators speaking version 3 know `RenewRequest`.
    private func renewCertificateIfDue(newConnection: Bool) {
        guard negotiatedVersion >= 3, renewer != nil else { return }
        do {
            if let request = try renewer?.request(now: Date(), instant: .now, newConnection: newConnection) {
                logger.info("renewing this host's certificate")
                outbound.send(.with { $0.renewRequest = request })
            }
        } catch {
            logger.warning("cannot prepare a certificate renewal", metadata: ["error": "\(error)"])
        }
    }

    func hello() async -> Gantry_V1_Hello {
        let held = await heldAttempts().map { held in
            Gantry_V1_HeldAttempt.with {
                $0.jobID = held.jobID
                $0.attempt = held.attempt
                $0.ackedLogOffset = UInt64(held.acknowledged)
                $0.finished = held.finished
            }
        }
        return .with {
            $0.minVersion = ProtocolVersion.minimum
            $0.maxVersion = ProtocolVersion.current
            $0.agentID = options.agentID
            $0.labels = options.labels
            $0.capacity = UInt32(options.capacity)
            $0.oneShot = options.oneShot
            $0.hostname = ProcessInfo.processInfo.hostName
            $0.agentVersion = "gantry-agent/0.1"
            $0.instance = instance
            $0.held = held
        }
    }

    private func resume(_ instructions: [Gantry_V1_Resume]) async {
        for instruction in instructions {
            guard let job = jobs[instruction.jobID], job.spec.attempt == instruction.attempt else { continue }
            if instruction.abort {
                await abort(job, why: "the coordinator no longer assigns this attempt to this agent")
                continue
            }
            // Resends the log from what the coordinator holds; a finished step's status
            // follows once all of it is acknowledged.
            await job.streamer.rewind(to: CoordinatorValueChecks.offset(instruction.logOffset))
        }
    }

    /// The attempts this agent holds, with what the coordinator has acknowledged of each.
    private func heldAttempts() async -> [(jobID: String, attempt: UInt32, acknowledged: Int, finished: Bool)] {
        var held: [(jobID: String, attempt: UInt32, acknowledged: Int, finished: Bool)] = []
        for job in jobs.values where !job.aborted {
            held.append((job.spec.jobID, job.spec.attempt, await job.streamer.acknowledgedOffset, job.result != nil))
        }
        return held
    }

    private func offerSlots() {
        guard !draining, !(options.oneShot && leasesTaken > 0), notReadyReason == nil else { return }
        let free = options.capacity - jobs.count
        if free > 0 { outbound.send(.with { $0.ready = .with { $0.slots = UInt32(free) } }) }
    }

    func heartbeat() async -> Gantry_V1_Heartbeat {
        renewCertificateIfDue(newConnection: false)
        let running = await heldAttempts().map { held in
            Gantry_V1_RunningAttempt.with {
                $0.jobID = held.jobID
                $0.attempt = held.attempt
                $0.logOffset = UInt64(held.acknowledged)
            }
        }
        return .with {
            $0.running = running
            $0.sentAtUnixMs = UInt64(Date().timeIntervalSince1970 * 1000)
            $0.notReadyReason = notReadyReason ?? ""
        }
    }

    // MARK: - Messages

    func received(_ envelope: Gantry_V1_Envelope) async {
        switch envelope.body {
        case .lease(let lease):
            accept(lease)
        case .logAck(let ack):
            if let job = jobs[ack.jobID], job.spec.attempt == ack.attempt {
                await job.streamer.acknowledged(offset: CoordinatorValueChecks.offset(ack.offset))
            }
        case .finishAck(let ack):
            if let job = jobs[ack.jobID], job.spec.attempt == ack.attempt { await complete(job) }
        case .cancel(let cancel):
            if let job = jobs[cancel.jobID], job.spec.attempt == cancel.attempt {
                logger.info("cancelling job at the coordinator's request", metadata: ["job": "\(cancel.jobID)"])
                job.control.stop(.cancelled(cancel.reason.isEmpty ? "cancelled" : cancel.reason))
            }
        case .drain:
            await drain()
        case .renewResponse(let response):
            switch renewer?.received(response, now: Date()) {
            case .installed(let notAfter):
                logger.info("installed a renewed certificate; the next connection uses it", metadata: ["valid_until": "\(notAfter)"])
            case .refused(let why):
                logger.warning("certificate renewal failed; keeping the current certificate", metadata: ["why": "\(why)"])
            case nil:
                logger.warning("ignoring a renewal answer nobody asked for")
            }
        case .error(let error):
            if error.code == .staleAttempt, let job = jobs[error.jobID], job.spec.attempt == error.attempt {
                await abort(job, why: error.message)
            } else {
                logger.warning(
                    "coordinator reported an error",
                    metadata: ["code": "\(error.code)", "message": "\(CoordinatorValueChecks.loggable(error.message))"])
            }
        default:
            logger.warning("ignoring an unexpected message from the coordinator")
        }
    }

    private func accept(_ lease: Gantry_V1_Lease) {
        let refusal: String?
        if draining {
            refusal = "agent is draining"
        } else if options.oneShot && leasesTaken > 0 {
            refusal = "one-shot agent already took its job"
        } else if jobs.count >= options.capacity {
            refusal = "agent is at capacity"
        } else if let notReadyReason {
            // Offered before the floor was crossed; the coordinator re-queues the job.
            refusal = notReadyReason
        } else if let problem = CoordinatorValueChecks.problem(with: lease) {
            refusal = problem
            logger.warning("refusing a lease with values out of range", metadata: ["why": "\(CoordinatorValueChecks.loggable(problem))"])
        } else {
            refusal = nil
        }
        if let refusal {
            outbound.send(
                .with {
                    $0.leaseAck = .with {
                        $0.jobID = lease.jobID
                        $0.attempt = lease.attempt
                        $0.accepted = false
                        $0.reason = refusal
                    }
                })
            return
        }
        let spec = JobRunner.Spec(lease: lease)
        let spool: LogSpool
        do {
            spool = try LogSpool(path: "\(options.spoolDirectory)/\(spec.jobID)-\(spec.attempt).log")
        } catch {
            outbound.send(
                .with {
                    $0.leaseAck = .with {
                        $0.jobID = lease.jobID
                        $0.attempt = lease.attempt
                        $0.accepted = false
                        $0.reason = "\(error)"
                    }
                })
            return
        }
        leasesTaken += 1
        let outbound = self.outbound
        let (jobID, attempt) = (spec.jobID, spec.attempt)
        let streamer = LogStreamer(
            jobID: spec.jobID, attempt: spec.attempt, spool: spool, configuration: options.streamer,
            upload: { outbound.send($0) },
            onFailure: { [weak self] why in await self?.spoolFailed(jobID: jobID, attempt: attempt, why: why) })
        let job = RunningJob(
            spec: spec, spool: spool, streamer: streamer,
            control: ProcessGroupControl(
                jobID: spec.jobID, attempt: spec.attempt, grace: .seconds(max(lease.cancelGraceSeconds, 1)),
                useCgroup: options.useCgroups))
        job.lock = AttemptLock.take("\(options.workRoot)/\(spec.jobID)-\(spec.attempt).lock")
        if job.lock == nil {
            logger.warning(
                "cannot take the attempt's lock in the work root: if this agent is killed, its leftovers are kept",
                metadata: ["job": "\(spec.jobID)"])
        }
        jobs[spec.jobID] = job
        outbound.send(
            .with {
                $0.leaseAck = .with {
                    $0.jobID = spec.jobID
                    $0.attempt = spec.attempt
                    $0.accepted = true
                }
            })
        outbound.send(
            .with {
                $0.jobStarted = .with {
                    $0.jobID = spec.jobID
                    $0.attempt = spec.attempt
                }
            })
        logger.info("running job", metadata: ["job": "\(spec.jobID)", "attempt": "\(spec.attempt)", "step": "\(spec.stepKey)"])
        let runner = self.runner
        job.tasks.append(Task { await streamer.run() })
        job.tasks.append(
            Task {
                let result = await runner.run(spec, spool: spool, control: job.control) {
                    streamer.outputAppended()
                    await streamer.waitForRoom()
                }
                await self.stepEnded(job, result: result)
            })
    }

    private func stepEnded(_ job: RunningJob, result: JobRunner.Result) async {
        job.result = result
        logger.info(
            "job step ended",
            metadata: ["job": "\(job.spec.jobID)", "outcome": "\(result.outcome)", "exit": "\(result.exitStatus)"])
        if job.aborted {
            await complete(job)
            return
        }
        let (jobID, attempt) = (job.spec.jobID, job.spec.attempt)
        await job.streamer.finish { [weak self] in await self?.sendFinished(jobID: jobID, attempt: attempt) }
    }

    /// The job's log cannot be read back from its spool, so the rest of it can never reach
    /// the coordinator: stop the step; the job is reported failed with the reason, its log
    /// ending where the spool could last be read (`sendFinished`).
    private func spoolFailed(jobID: String, attempt: UInt32, why: String) {
        guard let job = jobs[jobID], job.spec.attempt == attempt, !job.aborted else { return }
        logger.error(
            "cannot read the job's log back: stopping the step, the job will be reported failed",
            metadata: ["job": "\(jobID)", "attempt": "\(attempt)", "why": "\(why)"])
        job.control.stop(.failed(why))
    }

    /// Sent each time the whole log of a finished step is acknowledged (after a reconnect,
    /// again); the coordinator acknowledges a repeated finish idempotently.
    private func sendFinished(jobID: String, attempt: UInt32) async {
        guard let job = jobs[jobID], job.spec.attempt == attempt, var result = job.result, !job.aborted else { return }
        // A spool that could not be read back cut the log: the job failed, whatever the step did.
        if let failure = await job.streamer.failure {
            result = JobRunner.Result(outcome: .failed, exitStatus: result.exitStatus, signal: result.signal, message: failure)
        }
        let logLength = await job.streamer.end
        outbound.send(
            .with {
                $0.jobFinished = .with {
                    $0.jobID = job.spec.jobID
                    $0.attempt = job.spec.attempt
                    $0.outcome = result.outcome
                    $0.exitStatus = result.exitStatus
                    $0.signal = result.signal
                    $0.logLength = UInt64(logLength)
                    $0.message = result.message
                    $0.failure = result.failure
                }
            })
    }

    private func abort(_ job: RunningJob, why: String) async {
        guard !job.aborted else { return }
        logger.warning("aborting our copy of a job", metadata: ["job": "\(job.spec.jobID)", "why": "\(why)"])
        job.aborted = true
        job.control.stop(.cancelled(why))
        let streamer = job.streamer
        Task { await streamer.abandon() }
        if job.result != nil { await complete(job) }
    }

    /// The coordinator acknowledged the final status (or the attempt was aborted): forget it.
    private func complete(_ job: RunningJob) async {
        guard jobs[job.spec.jobID] === job else { return }
        jobs.removeValue(forKey: job.spec.jobID)
        for task in job.tasks { task.cancel() }
        job.spool.remove()
        job.lock?.release()
        // Off the actor: when a child has exited, the scan reads /proc and must not delay
        // the next lease.
        let reaper = self.reaper
        Task.detached { reaper.reap() }
        offerSlots()
        await exitIfIdle()
    }

    /// Done for good (drained, or a one-shot agent's job acknowledged): close the
    /// connection; `run` returns.
    private func exitIfIdle() async {
        let done = jobs.isEmpty && (draining || (options.oneShot && leasesTaken > 0))
        guard done, !finishedForGood else { return }
        finishedForGood = true
        await connection.shutdown()
    }
}
