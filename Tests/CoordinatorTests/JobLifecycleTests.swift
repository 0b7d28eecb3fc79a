import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Testing

/// Every transition of the job lifecycle, failures first, as a pure value type: no store,
/// no sockets, no clock (time is passed in), so each test runs in microseconds.
@Suite("Job lifecycle", .timeLimit(.minutes(1)))
struct JobLifecycleTests {
    static let t0 = ContinuousClock.now
    static let wall0 = Date(timeIntervalSince1970: 1_800_000_000)
    /// Heartbeat 1 s, lease TTL 3 s, deadline slack 30 s.
    var lifecycle = JobLifecycle(
        configuration: .init(heartbeatInterval: .seconds(1), leaseTTL: .seconds(3)), unfinished: [], pipelines: [:], now: t0)

    // MARK: - Helpers

    static func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int64(seconds * 1000)) }
    static func wall(_ seconds: Double) -> Date { wall0.addingTimeInterval(seconds) }

    @discardableResult
    mutating func connect(
        _ id: String, labels: [String: String] = [:], capacity: UInt32 = 1, oneShot: Bool = false,
        held: [(String, UInt32)] = [], instance: String = "", at seconds: Double = 0, ready: Bool = true
    ) throws -> JobLifecycle.Connection {
        let hello = Gantry_V1_Hello.with {
            $0.agentID = id
            $0.labels = labels
            $0.capacity = capacity
            // A current agent: it may take leases that use every field (version 4).
            $0.minVersion = 1
            $0.maxVersion = ProtocolVersion.current
            $0.oneShot = oneShot
            $0.instance = Data(instance.utf8)
            $0.held = held.map { job, attempt in .with { $0.jobID = job; $0.attempt = attempt } }
        }
        var connection = try lifecycle.agentConnected(hello, now: Self.at(seconds), wallClock: Self.wall(seconds)).get()
        if ready {
            let output = lifecycle.agentReady(id, slots: Int(capacity), now: Self.at(seconds), wallClock: Self.wall(seconds))
            connection.output.writes.append(contentsOf: output.writes)
            connection.output.actions += output.actions
        }
        return connection
    }

    /// Submits a pipeline file and returns the output and the jobs by step key.
    mutating func submit(_ yaml: String, at seconds: Double = 0) throws -> (LifecycleOutput, [String: StoredJob]) {
        let (output, jobs) = try submitJobs(yaml, at: seconds)
        return (output, Dictionary(jobs.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first }))
    }

    /// Submits a pipeline file and returns the output and every job row in position order
    /// (a matrix step has several per key).
    mutating func submitJobs(
        _ yaml: String, at seconds: Double = 0, request: API.SubmitPipeline? = nil
    ) throws -> (LifecycleOutput, [StoredJob]) {
        var request = request ?? API.SubmitPipeline(yaml: yaml)
        request.yaml = yaml
        let definition = try PipelineParser(file: "pipeline.yml").parse(yaml)
        let (pipeline, jobs) = try CoordinatorCore.rows(for: request, definition: definition, now: Self.wall(seconds))
        let output = lifecycle.submit(pipeline, jobs: jobs, now: Self.wall(seconds))
        return (output, jobs)
    }

    static func leases(_ output: LifecycleOutput, to agent: String) -> [Gantry_V1_Lease] {
        output.frames(to: agent).filter(\.isLease).map(\.lease)
    }

    static func errors(_ output: LifecycleOutput, to agent: String) -> [Gantry_V1_Error] {
        output.frames(to: agent).compactMap { if case .error(let error) = $0.body { return error }; return nil }
    }

    static func jobWrites(_ output: LifecycleOutput) -> [StoredJob] {
        output.writes.writes.compactMap { if case .updateJob(let job) = $0 { return job }; return nil }
    }

    static func attemptWrites(_ output: LifecycleOutput) -> [StoredAttempt] {
        output.writes.writes.compactMap { if case .saveAttempt(let attempt) = $0 { return attempt }; return nil }
    }

    static func finished(_ lease: Gantry_V1_Lease, _ outcome: Gantry_V1_Outcome = .succeeded, exit: Int32 = 0, length: UInt64 = 0)
        -> Gantry_V1_JobFinished
    {
        .with {
            $0.jobID = lease.jobID
            $0.attempt = lease.attempt
            $0.outcome = outcome
            $0.exitStatus = exit
            $0.logLength = length
        }
    }

    static func chunk(_ lease: Gantry_V1_Lease, offset: UInt64, length: UInt32, attempt: UInt32? = nil) -> Gantry_V1_LogChunk {
        .with {
            $0.jobID = lease.jobID
            $0.attempt = attempt ?? lease.attempt
            $0.offset = offset
            $0.rawLength = length
            $0.data = Data([1, 2, 3])
        }
    }

    static func started(_ lease: Gantry_V1_Lease) -> Gantry_V1_JobStarted {
        .with {
            $0.jobID = lease.jobID
            $0.attempt = lease.attempt
        }
    }

    /// Leases the one-step pipeline `yaml` to agent `a/1` and returns the lease.
    mutating func leasedJob(_ yaml: String = "steps:\n  - command: make\n") throws -> Gantry_V1_Lease {
        try connect("a/1")
        let (output, _) = try submit(yaml)
        return try #require(Self.leases(output, to: "a/1").first)
    }

    // MARK: - Dispatch

    @Test mutating func aSubmittedJobIsLeasedToAReadyAgentWithItsAttemptRecordedFirst() throws {
        try connect("a/1", labels: ["os": "linux"])
        let (output, jobs) = try submit("steps:\n  - {key: build, command: make, agents: {os: linux}}\n")
        let lease = try #require(Self.leases(output, to: "a/1").first)
        #expect(lease.jobID == jobs["build"]?.id && lease.attempt == 1 && lease.commands == ["make"])
        guard case .insertPipeline = output.writes.writes.first else { Issue.record("pipeline not inserted first"); return }
        #expect(Self.jobWrites(output).last?.state == .leased)
        #expect(Self.attemptWrites(output).map(\.state) == [.leased])
        #expect(lifecycle.scheduler.holder(of: lease.jobID) == "a/1")
    }

    @Test mutating func aJobWaitsForAMatchingAgentAndIsLeasedWhenOneIsReady() throws {
        try connect("a/1", labels: ["os": "mac"])
        let (output, _) = try submit("steps:\n  - {command: make, agents: {os: linux}}\n")
        #expect(Self.leases(output, to: "a/1").isEmpty)
        #expect(lifecycle.scheduler.queue.count == 1)
        try connect("b/1", labels: ["os": "linux"], ready: false)
        let ready = lifecycle.agentReady("b/1", slots: 1, now: Self.at(1), wallClock: Self.wall(1))
        #expect(Self.leases(ready, to: "b/1").count == 1)
        #expect(lifecycle.scheduler.queue.isEmpty)
    }

    @Test mutating func aOneShotAgentNeverGetsASecondLease() throws {
        try connect("a/1", oneShot: true)
        let (first, _) = try submit("steps:\n  - {key: x, command: x}\n  - {key: y, command: y}\n")
        let lease = try #require(Self.leases(first, to: "a/1").first)
        _ = lifecycle.jobStarted(Self.started(lease), from: "a/1", now: Self.wall(1))
        _ = lifecycle.jobFinished(Self.finished(lease), from: "a/1", alreadyFinished: nil, now: Self.wall(2))
        let again = lifecycle.agentReady("a/1", slots: 1, now: Self.at(2), wallClock: Self.wall(2))
        #expect(Self.leases(again, to: "a/1").isEmpty)
        #expect(lifecycle.scheduler.queue.count == 1)
    }

    @Test mutating func aRefusedLeaseIsRequeuedAndRecordedNeverTakenBack() throws {
        let lease = try leasedJob()
        let refused = lifecycle.leaseAcknowledged(
            .with {
                $0.jobID = lease.jobID
                $0.attempt = lease.attempt
                $0.accepted = false
                $0.reason = "disk full"
            }, from: "a/1", now: Self.wall(1))
        #expect(Self.attemptWrites(refused).map(\.state) == [.refused])
        #expect(lifecycle.jobs[lease.jobID]?.state == .queued)
        #expect(lifecycle.scheduler.holder(of: lease.jobID) == nil)
        // The refusing agent's slot is not reused until it says Ready again; another agent gets attempt 2.
        try connect("b/1", at: 1)
        #expect(lifecycle.jobs[lease.jobID]?.attempt == 2)
        #expect(lifecycle.scheduler.holder(of: lease.jobID) == "b/1")
    }

    @Test mutating func anAcceptedLeaseWritesNothing() throws {
        let lease = try leasedJob()
        let ack = lifecycle.leaseAcknowledged(
            .with {
                $0.jobID = lease.jobID
                $0.attempt = lease.attempt
                $0.accepted = true
            }, from: "a/1", now: Self.wall(1))
        #expect(ack.writes.isEmpty && ack.actions.isEmpty)
    }

    // MARK: - Fencing

    @Test mutating func messagesAboutAnotherAgentsOrAnOldAttemptAreFencedOff() throws {
        let lease = try leasedJob()
        try connect("b/1")
        for output in [
            lifecycle.jobStarted(Self.started(lease), from: "b/1", now: Self.wall(1)),
            lifecycle.logChunk(Self.chunk(lease, offset: 0, length: 3), from: "b/1"),
            lifecycle.logChunk(Self.chunk(lease, offset: 0, length: 3, attempt: 7), from: "a/1"),
            lifecycle.jobFinished(Self.finished(lease), from: "b/1", alreadyFinished: nil, now: Self.wall(1)),
        ] {
            #expect(output.writes.isEmpty)
            #expect(output.actions.allSatisfy {
                if case .send(let envelope, _) = $0, case .error(let error) = envelope.body { return error.code == .staleAttempt }
                return false
            })
        }
        #expect(lifecycle.jobs[lease.jobID]?.state == .leased)
    }

    @Test mutating func aHeartbeatNamingAStaleAttemptTellsTheAgentToStopIt() throws {
        let lease = try leasedJob()
        let output = lifecycle.heartbeat(
            .with { $0.running = [.with { $0.jobID = lease.jobID; $0.attempt = lease.attempt + 1 }] }, from: "a/1")
        #expect(Self.errors(output, to: "a/1").map(\.code) == [.staleAttempt])
        #expect(output.frames(to: "a/1").last?.isHeartbeatAck == true)
    }

    // MARK: - Logs

    @Test mutating func logChunksAreStoredInOrderResendsAckedAndGapsRefused() throws {
        let lease = try leasedJob()
        let first = lifecycle.logChunk(Self.chunk(lease, offset: 0, length: 10), from: "a/1")
        #expect(first.writes.writes.count == 1)
        #expect(first.frames(to: "a/1").last?.logAck.offset == 10)
        let resend = lifecycle.logChunk(Self.chunk(lease, offset: 0, length: 10), from: "a/1")
        #expect(resend.writes.isEmpty && resend.frames(to: "a/1").last?.logAck.offset == 10)
        let gap = lifecycle.logChunk(Self.chunk(lease, offset: 20, length: 5), from: "a/1")
        #expect(gap.writes.isEmpty)
        #expect(Self.errors(gap, to: "a/1").map(\.code) == [.logGap])
        #expect(gap.frames(to: "a/1").last?.logAck.offset == 10)
        #expect(lifecycle.jobs[lease.jobID]?.logLength == 10)
    }

    @Test mutating func aFinishBeforeTheWholeLogIsStoredAsksForTheTail() throws {
        let lease = try leasedJob()
        _ = lifecycle.logChunk(Self.chunk(lease, offset: 0, length: 10), from: "a/1")
        let early = lifecycle.jobFinished(Self.finished(lease, length: 25), from: "a/1", alreadyFinished: nil, now: Self.wall(1))
        #expect(early.writes.isEmpty)
        #expect(early.frames(to: "a/1").map(\.logAck.offset) == [10])
        #expect(lifecycle.jobs[lease.jobID]?.state == .leased)
    }

    // MARK: - Finish, retry, loss

    @Test mutating func aFinishIsCommittedWithItsAttemptAndAcknowledgedAfter() throws {
        let lease = try leasedJob()
        _ = lifecycle.jobStarted(Self.started(lease), from: "a/1", now: Self.wall(1))
        let done = lifecycle.jobFinished(Self.finished(lease, .failed, exit: 2), from: "a/1", alreadyFinished: nil, now: Self.wall(2))
        #expect(Self.jobWrites(done).map(\.state) == [.failed])
        #expect(Self.attemptWrites(done).map(\.state) == [.failed])
        #expect(done.frames(to: "a/1").last?.finishAck.jobID == lease.jobID)
        #expect(lifecycle.jobs[lease.jobID] == nil && lifecycle.pipelines.isEmpty)
        #expect(lifecycle.scheduler.holder(of: lease.jobID) == nil)
    }

    @Test mutating func aRepeatedFinishOfAFinishedAttemptIsOnlyAcknowledged() throws {
        let lease = try leasedJob()
        _ = lifecycle.jobFinished(Self.finished(lease), from: "a/1", alreadyFinished: nil, now: Self.wall(1))
        var stored = Self.storedJob(lease)
        stored.state = .succeeded
        stored.agentId = "a/1"
        let again = lifecycle.jobFinished(Self.finished(lease), from: "a/1", alreadyFinished: stored, now: Self.wall(2))
        #expect(again.writes.isEmpty)
        #expect(again.frames(to: "a/1").map(\.isFinishAck) == [true])
        // From another agent it is stale.
        let other = lifecycle.jobFinished(Self.finished(lease), from: "b/1", alreadyFinished: stored, now: Self.wall(2))
        #expect(Self.errors(other, to: "b/1").map(\.code) == [.staleAttempt])
    }

    static func storedJob(_ lease: Gantry_V1_Lease) -> StoredJob {
        StoredJob(
            id: lease.jobID, pipelineId: lease.pipelineID, position: 0, key: lease.stepKey, name: lease.stepKey, state: .leased,
            commands: lease.commands, env: [:], agents: [:], dependsOn: [], timeoutSeconds: nil, cancelGraceSeconds: 10,
            retry: [], retryCounts: [:], cancelReason: nil, attempt: Int(lease.attempt), agentId: nil, exitStatus: nil,
            reason: nil, createdAt: wall0, queuedAt: nil, startedAt: nil, finishedAt: nil, logLength: 0)
    }

    @Test mutating func anExitStatusRuleRetriesAsANewAttempt() throws {
        let lease = try leasedJob("steps:\n  - command: make\n    retry: {automatic: [{exit_status: 75, limit: 1}]}\n")
        let first = lifecycle.jobFinished(Self.finished(lease, .failed, exit: 75), from: "a/1", alreadyFinished: nil, now: Self.wall(1))
        #expect(Self.attemptWrites(first).first?.state == .failed)
        #expect(Self.jobWrites(first).first?.state == .queued)
        #expect(lifecycle.jobs[lease.jobID]?.retryCounts == ["exit_status:75": 1])
        _ = lifecycle.agentReady("a/1", slots: 1, now: Self.at(1), wallClock: Self.wall(1))
        let second = try #require(lifecycle.jobs[lease.jobID])
        #expect(second.attempt == 2 && second.state == .leased)
        var lease2 = lease
        lease2.attempt = 2
        let last = lifecycle.jobFinished(Self.finished(lease2, .failed, exit: 75), from: "a/1", alreadyFinished: nil, now: Self.wall(2))
        #expect(Self.jobWrites(last).first?.state == .failed, "the rule's limit is used up")
    }

    @Test mutating func aSilentAgentsJobIsRetriedThenFailsAgentLostWhenRetriesRunOut() throws {
        let lease = try leasedJob("steps:\n  - command: make\n    retry: {automatic: [{reason: agent_lost, limit: 1}]}\n")
        #expect(lifecycle.tick(now: Self.at(2.9), wallClock: Self.wall(2.9)).writes.isEmpty, "within the TTL nothing happens")
        let lost = lifecycle.tick(now: Self.at(3.5), wallClock: Self.wall(3.5))
        #expect(Self.attemptWrites(lost).map(\.state) == [.lost])
        #expect(lost.actions.contains(.closeConnection(agent: "a/1")))
        #expect(lifecycle.jobs[lease.jobID]?.state == .queued)
        #expect(lifecycle.lostAgents["a/1"] != nil)
        try connect("b/1", at: 4)
        let again = lifecycle.tick(now: Self.at(8), wallClock: Self.wall(8))
        #expect(Self.jobWrites(again).map(\.state) == [.failed])
        #expect(Self.jobWrites(again).first?.reason == "agent_lost")
    }

    @Test mutating func anAgentThatRestartedWithoutItsJobLosesItAtOnce() throws {
        let lease = try leasedJob()
        _ = lifecycle.agentDisconnected("a/1", now: Self.at(0.5))
        let back = try connect("a/1", held: [], at: 1)
        #expect(Self.attemptWrites(back.output).map(\.state) == [.lost, .leased], "lost, then leased again once it is ready")
        #expect(lifecycle.jobs[lease.jobID]?.attempt == 2)
    }

    @Test mutating func aReconnectWithinTheTTLResumesAndAStaleClaimIsAborted() throws {
        let lease = try leasedJob()
        _ = lifecycle.agentDisconnected("a/1", now: Self.at(0.5))
        let back = try connect("a/1", held: [(lease.jobID, lease.attempt), ("unknown", 1)], at: 2)
        #expect(back.resume.map(\.abort) == [false, true])
        #expect(back.output.writes.isEmpty)
        #expect(lifecycle.scheduler.holder(of: lease.jobID) == "a/1")
    }

    @Test mutating func afterARestartAHeldJobWaitsOneTTLForItsAgent() throws {
        let lease = try leasedJob()
        var job = try #require(lifecycle.jobs[lease.jobID])
        job.state = .running
        let progress = try #require(lifecycle.pipelines[job.pipelineId])
        var restarted = JobLifecycle(
            configuration: lifecycle.configuration, unfinished: [job], pipelines: [job.pipelineId: progress], now: Self.at(10))
        #expect(restarted.scheduler.holder(of: job.id) == "a/1")
        let gone = restarted.tick(now: Self.at(14), wallClock: Self.wall(14))
        #expect(Self.attemptWrites(gone).map(\.state) == [.lost])
        #expect(restarted.jobs[job.id]?.state == .queued)
    }

    // MARK: - Cancel and deadlines

    @Test mutating func aCancelledQueuedJobEndsAtOnceAndIsNeverLeased() throws {
        let (_, jobs) = try submit("steps:\n  - {key: a, command: x}\n  - {key: b, command: y, depends_on: a}\n")
        let id = try #require(jobs["a"]?.id)
        let cancelled = lifecycle.cancel(job: id, reason: "no", now: Self.wall(1))
        let (job, output) = try #require(cancelled)
        #expect(job.state == .cancelled)
        #expect(Self.jobWrites(output).map(\.state) == [.cancelled, .cancelled], "the dependent is cancelled too")
        try connect("a/1", at: 2)
        #expect(lifecycle.jobs.isEmpty && lifecycle.scheduler.queue.isEmpty)
    }

    @Test mutating func aCancelledHeldJobEndsCancelledHoweverTheAttemptEnds() throws {
        let lease = try leasedJob()
        let cancelled = lifecycle.cancel(job: lease.jobID, reason: "stop", now: Self.wall(1))
        let (_, output) = try #require(cancelled)
        #expect(output.frames(to: "a/1").map(\.cancel.jobID) == [lease.jobID])
        #expect(lifecycle.cancel(job: lease.jobID, reason: "again", now: Self.wall(1))?.output.actions.isEmpty == true)
        let done = lifecycle.jobFinished(Self.finished(lease, .failed, exit: 143), from: "a/1", alreadyFinished: nil, now: Self.wall(2))
        #expect(Self.jobWrites(done).first?.state == .cancelled && Self.jobWrites(done).first?.reason == "stop")
    }

    @Test mutating func aCancelledJobWhoseAgentVanishesEndsCancelledNotRetried() throws {
        let lease = try leasedJob()
        _ = lifecycle.cancel(job: lease.jobID, reason: "stop", now: Self.wall(1))
        let lost = lifecycle.tick(now: Self.at(5), wallClock: Self.wall(5))
        #expect(Self.jobWrites(lost).map(\.state) == [.cancelled])
        #expect(Self.attemptWrites(lost).map(\.state) == [.lost])
    }

    @Test mutating func aPipelineCancelIsOneTurnForAllItsJobs() throws {
        try connect("a/1")
        let (submitted, _) = try submit("steps:\n  - {key: a, command: x}\n  - {key: b, command: y}\n  - {key: c, command: z, depends_on: a}\n")
        let held = try #require(Self.leases(submitted, to: "a/1").first)
        let pipelineID = held.pipelineID
        let output = lifecycle.cancel(pipeline: pipelineID, reason: "stop", now: Self.wall(1))
        #expect(Self.jobWrites(output).count == 3)
        #expect(output.frames(to: "a/1").map(\.cancel.jobID) == [held.jobID])
        #expect(lifecycle.jobs.keys.sorted() == [held.jobID], "only the held job is left, to end when its agent reports")
        #expect(lifecycle.scheduler.queue.isEmpty)
    }

    @Test mutating func aRunningJobPastItsDeadlineIsTimedOutByTheCoordinator() throws {
        let lease = try leasedJob("steps:\n  - {command: sleep 100, timeout: 10s, cancel_grace: 5s}\n")
        _ = lifecycle.jobStarted(Self.started(lease), from: "a/1", now: Self.wall(0))
        // Heartbeats keep the agent alive; only the deadline matters.
        lifecycle.agentHeard("a/1", now: Self.at(44), wallClock: Self.wall(44))
        #expect(lifecycle.tick(now: Self.at(44), wallClock: Self.wall(44)).writes.isEmpty, "10 + 5 + 30 s not yet passed")
        lifecycle.agentHeard("a/1", now: Self.at(46), wallClock: Self.wall(46))
        let late = lifecycle.tick(now: Self.at(46), wallClock: Self.wall(46))
        #expect(Self.jobWrites(late).map(\.state) == [.timedOut])
        #expect(Self.attemptWrites(late).map(\.state) == [.timedOut])
        #expect(late.frames(to: "a/1").map(\.cancel.reason) == ["timed out"])
        let report = lifecycle.jobFinished(Self.finished(lease, .timedOut), from: "a/1", alreadyFinished: nil, now: Self.wall(47))
        #expect(report.writes.isEmpty, "the fenced-off attempt's late report changes nothing")
    }

    // MARK: - Dependencies

    @Test mutating func successUnblocksDependentsAndFailureSkipsThemTransitively() throws {
        try connect("a/1", capacity: 2)
        let yaml = "steps:\n  - {key: a, command: x}\n  - {key: b, command: y, depends_on: a}\n  - {key: c, command: z, depends_on: b}\n"
        let (first, jobs) = try submit(yaml)
        let a = try #require(Self.leases(first, to: "a/1").first)
        let done = lifecycle.jobFinished(Self.finished(a), from: "a/1", alreadyFinished: nil, now: Self.wall(1))
        let leasesAfter = Self.leases(done, to: "a/1")
        let b = try #require(leasesAfter.first, "b is leased in the same turn as a finishes")
        #expect(b.stepKey == "b")
        let failed = lifecycle.jobFinished(Self.finished(b, .failed, exit: 1), from: "a/1", alreadyFinished: nil, now: Self.wall(2))
        let c = try #require(Self.jobWrites(failed).first { $0.id == jobs["c"]?.id })
        #expect(c.state == .skipped && c.reason == "dependency `b` failed" && c.outcome == .failed)
        #expect(lifecycle.jobs.isEmpty && lifecycle.pipelines.isEmpty)
    }

    // MARK: - Connections

    @Test mutating func aSecondProcessClaimingALiveHeartbeatingIdIsRefused() throws {
        try connect("a/1", instance: "one")
        let hello = Gantry_V1_Hello.with {
            $0.agentID = "a/1"
            $0.instance = Data("two".utf8)
        }
        let refused = lifecycle.agentConnected(hello, now: Self.at(1), wallClock: Self.wall(1))
        #expect((try? refused.get()) == nil)
        if case .failure(let refusal) = refused { #expect(refusal.code == .agentIDInUse) }
        // The same process reconnecting is accepted and replaces the live connection.
        #expect(try connect("a/1", instance: "one", at: 1).replacesLiveConnection)
        // So is another once the live one has been silent two heartbeat intervals.
        #expect(try connect("a/1", instance: "three", at: 3.5).replacesLiveConnection)
    }

    @Test mutating func aFinishedOneShotAgentsIdMayBeReusedAtOnce() throws {
        try connect("a/1", oneShot: true, instance: "one")
        let (submitted, _) = try submit("steps:\n  - command: x\n")
        let lease = try #require(Self.leases(submitted, to: "a/1").first)
        _ = lifecycle.jobFinished(Self.finished(lease), from: "a/1", alreadyFinished: nil, now: Self.wall(1))
        #expect(try connect("a/1", oneShot: true, instance: "two", at: 1).replacesLiveConnection)
    }

    @Test mutating func scaleInDrainsOnlyIdleAgents() throws {
        try connect("h/1")
        try connect("h/2")
        _ = try submit("steps:\n  - command: x\n")
        let busy = lifecycle.scheduler.agents.values.first { !$0.running.isEmpty }?.id
        let (drained, output) = lifecycle.drainIdle(candidates: ["h/1", "h/2"], count: 2, requestedBy: "s")
        #expect(drained.count == 1 && !drained.contains(busy ?? ""))
        #expect(output.frames(to: drained[0]).map(\.isDrain) == [true])
    }

    // MARK: - Invariants under random events

    /// A seeded random walk over events; after each one the lifecycle's invariants hold:
    /// unfinished ⇔ in `jobs`, held ⇔ has a holder that is the job's agent, no agent holds
    /// more than its capacity, and every lease goes to a connected agent.
    @Test mutating func invariantsHoldUnderRandomEvents() throws {
        var random = SplitMix64(seed: 11)
        var leases: [String: Gantry_V1_Lease] = [:]
        var clock = 0.0
        let agents = ["a/1", "a/2", "b/1"]
        var granted = 0
        var ended = 0
        for agent in agents { try connect(agent, capacity: 2, at: clock) }
        for _ in 0..<1_500 {
            clock += 0.1
            var output = LifecycleOutput()
            switch random.next() % 10 {
            case 0:
                output = try submit(
                    "steps:\n  - {key: a, command: x}\n  - {key: b, command: y, depends_on: a}\n  - {key: c, command: z}\n",
                    at: clock
                ).0
            case 1, 2:
                if let (id, lease) = leases.randomElement(using: &random) {
                    let outcome: Gantry_V1_Outcome = random.next() % 3 == 0 ? .failed : .succeeded
                    let holder = lifecycle.scheduler.holder(of: id) ?? "a/1"
                    output = lifecycle.jobFinished(
                        Self.finished(lease, outcome, exit: outcome == .failed ? 1 : 0), from: holder, alreadyFinished: nil,
                        now: Self.wall(clock))
                    leases.removeValue(forKey: id)
                }
            case 3:
                let agent = agents.randomElement(using: &random)!
                if lifecycle.scheduler.agents[agent]?.connected == true {
                    output = lifecycle.agentReady(agent, slots: 2, now: Self.at(clock), wallClock: Self.wall(clock))
                } else {
                    // A reconnect claims what the agent still runs (or, after a restart, nothing).
                    let held = lifecycle.scheduler.agents[agent]?.running.compactMap { id in
                        lifecycle.jobs[id].map { (id, UInt32($0.attempt)) }
                    } ?? []
                    output = try connect(agent, capacity: 2, held: random.next() % 2 == 0 ? held : [], at: clock).output
                }
            case 4:
                if let id = lifecycle.jobs.keys.randomElement(using: &random) {
                    output = lifecycle.cancel(job: id, reason: "r", now: Self.wall(clock))?.output ?? LifecycleOutput()
                }
            case 5:
                let agent = agents.randomElement(using: &random)!
                output = lifecycle.agentDisconnected(agent, now: Self.at(clock))
            case 6:
                output = lifecycle.tick(now: Self.at(clock), wallClock: Self.wall(clock))
            default:
                for agent in agents where lifecycle.scheduler.agents[agent]?.connected == true {
                    lifecycle.agentHeard(agent, now: Self.at(clock), wallClock: Self.wall(clock))
                }
            }
            for action in output.actions {
                if case .send(let envelope, let agent) = action, envelope.isLease {
                    #expect(lifecycle.scheduler.agents[agent]?.connected == true, "a lease goes only to a connected agent")
                    leases[envelope.lease.jobID] = envelope.lease
                    granted += 1
                }
            }
            ended += Self.jobWrites(output).filter(\.isTerminal).count
            try checkInvariants()
        }
        // The walk must have exercised the machine, not idled.
        #expect(granted > 100 && ended > 100, "granted \(granted), ended \(ended)")
    }

    func checkInvariants() throws {
        for (id, job) in lifecycle.jobs {
            #expect(!job.isTerminal)
            let holder = lifecycle.scheduler.holder(of: id)
            #expect(job.state.isHeld == (holder != nil), "job \(id) in \(job.state) held by \(holder ?? "nobody")")
            if let holder { #expect(job.agentId == holder) }
            #expect(lifecycle.pipelines[job.pipelineId] != nil)
        }
        for agent in lifecycle.scheduler.agents.values {
            #expect(agent.running.count <= agent.capacity)
            for job in agent.running { #expect(lifecycle.scheduler.holder(of: job) == agent.id) }
        }
        var unfinished: [String: Int] = [:]
        for job in lifecycle.jobs.values { unfinished[job.pipelineId, default: 0] += 1 }
        #expect(lifecycle.pipelines.mapValues(\.unfinished) == unfinished)
    }
}
