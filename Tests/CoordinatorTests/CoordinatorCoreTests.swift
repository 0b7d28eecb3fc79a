import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Logging
import NIOCore
import Testing

/// The coordinator's job lifecycle against a real SQLite store, with agent sessions whose
/// outbound frames the test reads directly (no network).
@Suite("Coordinator core", .timeLimit(.minutes(2)))
final class CoordinatorCoreTests {
    let directory: String
    let store: SQLiteStore

    init() throws {
        directory = NSTemporaryDirectory() + "gantry-core-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try SQLiteStore(path: directory + "/gantry.sqlite")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func makeCore(ttl: Duration = .seconds(15), store: SQLiteStore? = nil) throws -> CoordinatorCore {
        try CoordinatorCore(
            store: store ?? self.store,
            configuration: .init(heartbeatInterval: .seconds(1), leaseTTL: ttl),
            logger: Logger(label: "test"))
    }

    /// An agent session plus an iterator over what the coordinator sends it.
    final class FakeAgent: @unchecked Sendable {
        let session: AgentSession
        var frames: AsyncStream<Gantry_V1_Envelope>.Iterator
        init(_ id: String) {
            session = AgentSession(agentID: id)
            frames = session.outbound.makeAsyncIterator()
        }

        /// The next frame, or nil if none arrives within 30 s (the session is closed then,
        /// so a missing frame fails the test instead of hanging it). A guard against a
        /// hang, not a timing assertion: the full suite starts every integration test's
        /// processes at once, and on 2 cores a frame can take seconds.
        func next() async -> Gantry_V1_Envelope? {
            let deadline = Task {
                try await Task.sleep(for: .seconds(30))
                self.session.close()
            }
            defer { deadline.cancel() }
            return await frames.next()
        }
    }

    func connect(_ core: CoordinatorCore, _ id: String, labels: [String: String] = [:], held: [Gantry_V1_HeldAttempt] = [])
        async throws -> (FakeAgent, Gantry_V1_Welcome)
    {
        let agent = FakeAgent(id)
        let hello = Gantry_V1_Hello.with {
            $0.minVersion = 1
            $0.maxVersion = 1
            $0.agentID = id
            $0.labels = labels
            $0.capacity = 1
            $0.held = held
        }
        let welcome = try await core.hello(hello, certificateName: String(id.split(separator: "/")[0]), session: agent.session).get()
        return (agent, welcome)
    }

    func chunk(_ lease: Gantry_V1_Lease, offset: Int, _ text: String) throws -> Gantry_V1_Envelope {
        let compressed = try LogCompression.compress(ByteBuffer(string: text))
        return .with {
            $0.logChunk = .with {
                $0.jobID = lease.jobID
                $0.attempt = lease.attempt
                $0.offset = UInt64(offset)
                $0.rawLength = UInt32(text.utf8.count)
                $0.data = Data(buffer: compressed)
            }
        }
    }

    func finished(_ lease: Gantry_V1_Lease, _ outcome: Gantry_V1_Outcome = .succeeded, exit: Int32 = 0, length: Int) -> Gantry_V1_Envelope {
        .with {
            $0.jobFinished = .with {
                $0.jobID = lease.jobID
                $0.attempt = lease.attempt
                $0.outcome = outcome
                $0.exitStatus = exit
                $0.logLength = UInt64(length)
            }
        }
    }

    func readLog(_ jobID: String, attempt: Int) throws -> String {
        var text = ""
        for row in try store.logChunks(jobID: jobID, attempt: attempt, from: 0) {
            text += String(buffer: try LogCompression.decompress(ByteBuffer(bytes: row.data), expectedLength: row.rawLength))
        }
        return text
    }

    @Test func fullLifecycleWithDependencies() async throws {
        let core = try makeCore()
        let (agent, welcome) = try await connect(core, "h/1", labels: ["os": "linux"])
        #expect(welcome.version == 1 && welcome.leaseTtlMs == 15_000)
        let pipeline = try await core.submit(
            .init(yaml: "steps:\n  - key: a\n    command: echo a\n    agents: {os: linux}\n  - key: b\n    depends_on: a\n    command: echo b\n"))
        #expect(pipeline.jobs.map(\.state) == ["queued", "waiting"])

        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: agent.session)
        let lease = try #require(await agent.next()?.lease)
        #expect(lease.stepKey == "a" && lease.attempt == 1 && lease.commands == ["echo a"])

        await core.receive(.with { $0.jobStarted = .with { $0.jobID = lease.jobID; $0.attempt = 1 } }, from: "h/1", session: agent.session)
        await core.flush()
        #expect(try store.job(id: lease.jobID)?.state == .running)

        await core.receive(try chunk(lease, offset: 0, "hello "), from: "h/1", session: agent.session)
        #expect(await agent.next()?.logAck.offset == 6)
        // A resend of stored bytes is acknowledged, not stored twice.
        await core.receive(try chunk(lease, offset: 0, "hello "), from: "h/1", session: agent.session)
        #expect(await agent.next()?.logAck.offset == 6)
        // A gap is refused and the stored offset re-acknowledged.
        await core.receive(try chunk(lease, offset: 10, "zzz"), from: "h/1", session: agent.session)
        #expect(await agent.next()?.error.code == .logGap)
        #expect(await agent.next()?.logAck.offset == 6)
        await core.receive(try chunk(lease, offset: 6, "world\n"), from: "h/1", session: agent.session)
        #expect(await agent.next()?.logAck.offset == 12)

        // Finishing before the log is complete is answered with the stored offset.
        await core.receive(finished(lease, length: 20), from: "h/1", session: agent.session)
        #expect(await agent.next()?.logAck.offset == 12)
        await core.receive(finished(lease, length: 12), from: "h/1", session: agent.session)
        #expect(await agent.next()?.finishAck.jobID == lease.jobID)
        #expect(try readLog(lease.jobID, attempt: 1) == "hello world\n")
        // Finishing is idempotent for the same attempt.
        await core.receive(finished(lease, length: 12), from: "h/1", session: agent.session)
        #expect(await agent.next()?.finishAck.jobID == lease.jobID)

        // The dependent step became runnable; the agent asks for more.
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: agent.session)
        let second = try #require(await agent.next()?.lease)
        #expect(second.stepKey == "b")
        await core.receive(finished(second, .failed, exit: 3, length: 0), from: "h/1", session: agent.session)
        #expect(await agent.next()?.finishAck.jobID == second.jobID)
        let done = try #require(try await core.pipeline(id: pipeline.id))
        #expect(done.state == "failed")
        #expect(done.jobs.map(\.state) == ["succeeded", "failed"])
        #expect(done.jobs[1].exitStatus == 3)
    }

    @Test func failedDependencySkipsDependentsTransitively() async throws {
        let core = try makeCore()
        let (agent, _) = try await connect(core, "h/1")
        let pipeline = try await core.submit(
            .init(yaml: "steps:\n  - {key: a, command: x}\n  - {key: b, command: x, depends_on: a}\n  - {key: c, command: x, depends_on: b}\n"))
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: agent.session)
        let lease = try #require(await agent.next()?.lease)
        await core.receive(finished(lease, .timedOut, exit: -1, length: 0), from: "h/1", session: agent.session)
        _ = await agent.next()
        let done = try #require(try await core.pipeline(id: pipeline.id))
        #expect(done.jobs.map(\.state) == ["timed_out", "skipped", "skipped"])
        #expect(done.jobs.map(\.outcome) == ["failed", "failed", "failed"])
        #expect(done.jobs[2].reason == "dependency `b` failed")
        #expect(done.state == "failed")
    }

    @Test func staleAttemptIsFencedOff() async throws {
        let core = try makeCore(ttl: .milliseconds(100))
        let (first, _) = try await connect(core, "h/1")
        _ = try await core.submit(.init(yaml: "steps:\n  - command: x\n"))
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: first.session)
        let lease = try #require(await first.next()?.lease)
        await core.flush()
        let leasedAt = try #require(try store.attempts(jobID: lease.jobID).first?.leasedAt)
        await core.disconnected(agentID: "h/1", session: first.session)

        // Within the TTL nothing happens; past it the job is lost and re-queued.
        await core.tick(now: .now + .milliseconds(50))
        await core.flush()
        #expect(try store.job(id: lease.jobID)?.state == .leased)
        await core.tick(now: .now + .milliseconds(150))
        await core.flush()
        let job = try #require(try store.job(id: lease.jobID))
        #expect(job.state == .queued && job.reason == "retrying after agent_lost (1 of 2)")
        let (second, _) = try await connect(core, "h/2")
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/2", session: second.session)
        let retry = try #require(await second.next()?.lease)
        #expect(retry.jobID == lease.jobID && retry.attempt == 2)

        // The first agent comes back holding attempt 1: told to abort, and its finish is refused.
        let (stale, welcome) = try await connect(
            core, "h/1", held: [.with { $0.jobID = lease.jobID; $0.attempt = 1; $0.finished = true }])
        #expect(welcome.resume.first?.abort == true)
        await core.receive(finished(lease, length: 0), from: "h/1", session: stale.session)
        let refusal = try #require(await stale.next()?.error)
        #expect(refusal.code == .staleAttempt && refusal.attempt == 1)
        await core.flush()
        #expect(try store.job(id: lease.jobID)?.state == .leased)

        await core.flush()
        let attempts = try store.attempts(jobID: lease.jobID)
        #expect(attempts.map(\.state) == [.lost, .leased])
        #expect(attempts.first?.reason == "agent_lost")
        // The first attempt keeps the time it was leased, not the time it was lost.
        #expect(attempts.first?.leasedAt == leasedAt)
        #expect(attempts.first?.finishedAt != nil)
    }

    @Test func restartedCoordinatorReattachesARunningJob() async throws {
        let core = try makeCore()
        let (agent, _) = try await connect(core, "h/1")
        _ = try await core.submit(.init(yaml: "steps:\n  - command: x\n"))
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: agent.session)
        let lease = try #require(await agent.next()?.lease)
        await core.receive(.with { $0.jobStarted = .with { $0.jobID = lease.jobID; $0.attempt = 1 } }, from: "h/1", session: agent.session)
        await core.receive(try chunk(lease, offset: 0, "before restart\n"), from: "h/1", session: agent.session)
        _ = await agent.next()

        // A new core on the same database, as after kill -9.
        let restarted = try makeCore(store: try SQLiteStore(path: directory + "/gantry.sqlite"))
        let (again, welcome) = try await connect(
            restarted, "h/1", held: [.with { $0.jobID = lease.jobID; $0.attempt = 1; $0.ackedLogOffset = 15 }])
        #expect(welcome.resume.first?.abort == false)
        #expect(welcome.resume.first?.logOffset == 15)
        await restarted.receive(try chunk(lease, offset: 15, "after\n"), from: "h/1", session: again.session)
        #expect(await again.next()?.logAck.offset == 21)
        await restarted.receive(finished(lease, length: 21), from: "h/1", session: again.session)
        #expect(await again.next()?.finishAck.jobID == lease.jobID)
        #expect(try readLog(lease.jobID, attempt: 1) == "before restart\nafter\n")
        await core.flush()
        #expect(try store.job(id: lease.jobID)?.attempt == 1)
    }

    @Test func lostTooOftenFailsWithAgentLost() async throws {
        let core = try makeCore(ttl: .milliseconds(50))
        _ = try await core.submit(.init(yaml: "steps:\n  - command: x\n    retry: {automatic: [{reason: agent_lost, limit: 1}]}\n"))
        for round in 1...2 {
            let (agent, _) = try await connect(core, "h/\(round)")
            await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/\(round)", session: agent.session)
            _ = try #require(await agent.next()?.lease)
            await core.disconnected(agentID: "h/\(round)", session: agent.session)
            await core.tick(now: .now + .milliseconds(80))
        }
        await core.flush()
        let job = try #require(try store.jobs().first)
        #expect(job.state == .failed && job.reason == "agent_lost" && job.attempt == 2)
    }

    @Test func cancellingAQueuedJobNeverLeasesIt() async throws {
        let core = try makeCore()
        let pipeline = try await core.submit(.init(yaml: "steps:\n  - {key: a, command: x}\n  - {key: b, command: y, depends_on: a}\n"))
        let cancelled = try #require(try await core.cancel(jobID: pipeline.jobs[0].id))
        #expect(cancelled.state == "cancelled")
        let (agent, _) = try await connect(core, "h/1")
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: agent.session)
        let done = try #require(try await core.pipeline(id: pipeline.id))
        #expect(done.jobs.map(\.state) == ["cancelled", "cancelled"])
        #expect(done.jobs.allSatisfy { $0.attempt == 0 }, "nothing was ever leased")
        // Cancelling again, or a finished job, changes nothing.
        #expect(try await core.cancel(jobID: pipeline.jobs[0].id)?.state == "cancelled")
        #expect(try await core.cancel(jobID: "no-such-job") == nil)
    }

    @Test func cancellingARunningJobAsksItsAgentAndEndsCancelledWithTheLog() async throws {
        let core = try makeCore()
        let (agent, _) = try await connect(core, "h/1")
        let pipeline = try await core.submit(.init(yaml: "steps:\n  - {key: a, command: x, cancel_grace: 3s}\n"))
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: agent.session)
        let lease = try #require(await agent.next()?.lease)
        #expect(lease.cancelGraceSeconds == 3)
        await core.receive(.with { $0.jobStarted = .with { $0.jobID = lease.jobID; $0.attempt = 1 } }, from: "h/1", session: agent.session)
        _ = try await core.cancel(pipelineID: pipeline.id)
        let cancel = try #require(await agent.next()?.cancel)
        #expect(cancel.jobID == lease.jobID && cancel.attempt == 1)
        await core.flush()
        #expect(try store.job(id: lease.jobID)?.state == .running, "still running until the agent reports")
        // The step died of the SIGTERM: the agent reports cancelled (or failed), with the tail.
        await core.receive(try chunk(lease, offset: 0, "partial output\n"), from: "h/1", session: agent.session)
        _ = await agent.next()
        await core.receive(finished(lease, .failed, exit: 143, length: 15), from: "h/1", session: agent.session)
        #expect(await agent.next()?.finishAck.jobID == lease.jobID)
        await core.flush()
        let job = try #require(try store.job(id: lease.jobID))
        #expect(job.state == .cancelled && job.reason == "cancelled by user")
        #expect(try readLog(lease.jobID, attempt: 1) == "partial output\n")
    }

    @Test func failedExitStatusIsRetriedByItsRule() async throws {
        let core = try makeCore()
        let (agent, _) = try await connect(core, "h/1")
        _ = try await core.submit(.init(yaml: "steps:\n  - command: x\n    retry: {automatic: [{exit_status: 75, limit: 1}]}\n"))
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: agent.session)
        let first = try #require(await agent.next()?.lease)
        await core.receive(finished(first, .failed, exit: 75, length: 0), from: "h/1", session: agent.session)
        _ = await agent.next()
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: agent.session)
        let second = try #require(await agent.next()?.lease)
        #expect(second.jobID == first.jobID && second.attempt == 2)
        await core.receive(finished(second, .failed, exit: 75, length: 0), from: "h/1", session: agent.session)
        _ = await agent.next()
        await core.flush()
        let job = try #require(try store.job(id: first.jobID))
        #expect(job.state == .failed && job.exitStatus == 75 && job.attempt == 2, "the limit of 1 retry is used up")
        await core.flush()
        #expect(try store.attempts(jobID: first.jobID).map(\.state) == [.failed, .failed])
    }

    /// A chunk that does not inflate to what its header says is refused with the reason
    /// by the check the listener runs on the connection's task (never in the core).
    @Test func aCorruptLogChunkIsRefusedWithTheReason() async throws {
        let lease = Gantry_V1_Lease.with {
            $0.jobID = "j"
            $0.attempt = 1
        }
        var corrupt = try chunk(lease, offset: 0, "hello world\n")
        corrupt.logChunk.rawLength = 5
        let problem = try #require(LogChunkCheck.problem(with: corrupt.logChunk, inflater: try LogChunkInflater()))
        #expect(problem.contains("offset 0") && problem.contains("more than the 5 bytes"), "\(problem)")
        #expect(LogChunkCheck.problem(with: try chunk(lease, offset: 0, "hello world\n").logChunk, inflater: try LogChunkInflater()) == nil)
    }

    /// Out-of-range numbers from an agent (finding 1 of the hardening review: an offset of
    /// 2^63 trapped the coordinator) close that agent's connection with a clear error; the
    /// core stays up, stores nothing, and the same job completes over a new connection.
    @Test func outOfRangeOffsetsCloseTheConnectionAndLoseNothing() async throws {
        let core = try makeCore()
        var (agent, _) = try await connect(core, "h/1")
        _ = try await core.submit(.init(yaml: "steps:\n  - command: x\n"))
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: agent.session)
        let lease = try #require(await agent.next()?.lease)
        let held = Gantry_V1_HeldAttempt.with {
            $0.jobID = lease.jobID
            $0.attempt = lease.attempt
        }
        for hostile in [UInt64(1) << 63, UInt64.max, UInt64(Int.max) - 3] {
            var badChunk = try chunk(lease, offset: 0, "hello world\n")
            badChunk.logChunk.offset = hostile
            var badFinish = finished(lease, length: 0)
            badFinish.jobFinished.logLength = hostile
            for (attack, field) in [(badChunk, "log_chunk.offset"), (badFinish, "job_finished.log_length")] {
                await core.receive(attack, from: "h/1", session: agent.session)
                let refusal = try #require(await agent.next()?.error)
                #expect(refusal.code == .malformed && refusal.fatal && refusal.message.contains(field), "\(refusal.message)")
                #expect(await agent.next() == nil, "the session is closed after the refusal")
                // The connection ends; the agent reconnects and resumes its attempt.
                await core.disconnected(agentID: "h/1", session: agent.session)
                let (again, welcome) = try await connect(core, "h/1", held: [held])
                #expect(welcome.resume.first?.abort == false, "the attempt is still the agent's")
                agent = again
            }
        }
        await core.receive(try chunk(lease, offset: 0, "hello world\n"), from: "h/1", session: agent.session)
        #expect(await agent.next()?.logAck.offset == 12)
        await core.receive(finished(lease, length: 12), from: "h/1", session: agent.session)
        #expect(await agent.next()?.finishAck.jobID == lease.jobID)
        await core.flush()
        #expect(try store.job(id: lease.jobID)?.state == .succeeded)
        #expect(try readLog(lease.jobID, attempt: Int(lease.attempt)) == "hello world\n")
    }

    /// A second live connection for a connected, heartbeating agent id is refused with an
    /// error naming the id and `--slot`; once the first has been silent for two heartbeat
    /// intervals, a reconnect with the same id takes over and resumes its job.
    @Test func aSecondConnectionForALiveAgentIDIsRefused() async throws {
        let core = try makeCore()
        let (agent, _) = try await connect(core, "h/1")
        _ = try await core.submit(.init(yaml: "steps:\n  - command: x\n"))
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: agent.session)
        let lease = try #require(await agent.next()?.lease)
        let twin = AgentSession(agentID: "h/1")
        let refused = await core.hello(
            .with {
                $0.minVersion = 1
                $0.maxVersion = 2
                $0.agentID = "h/1"
            }, certificateName: "h", session: twin)
        guard case .failure(.refused(.agentIDInUse, let message)) = refused else {
            Issue.record("expected a refusal, got \(refused)")
            return
        }
        #expect(message.contains("'h/1'") && message.contains("--slot"))
        await core.flush()
        #expect(try store.job(id: lease.jobID)?.agentId == "h/1", "the first connection keeps its job")
        await core.receive(.with { $0.jobStarted = .with { $0.jobID = lease.jobID; $0.attempt = lease.attempt } }, from: "h/1", session: agent.session)
        await core.flush()
        #expect(try store.job(id: lease.jobID)?.state == .running, "the first session is still the live one")
    }

    /// The same agent process reconnecting (its `instance` matches the live session's) takes
    /// over at once, without waiting for the old session to go silent.
    @Test func theSameAgentProcessTakesOverAtOnce() async throws {
        let core = try makeCore()
        let instance = Data([1, 2, 3, 4])
        let hello = Gantry_V1_Hello.with {
            $0.minVersion = 1
            $0.maxVersion = 2
            $0.agentID = "h/1"
            $0.capacity = 1
            $0.instance = instance
        }
        let first = FakeAgent("h/1")
        _ = try await core.hello(hello, certificateName: "h", session: first.session).get()
        var impostor = hello
        impostor.instance = Data([9])
        guard case .failure(.refused(.agentIDInUse, _)) = await core.hello(impostor, certificateName: "h", session: FakeAgent("h/1").session)
        else {
            Issue.record("another process with the same id must be refused")
            return
        }
        let again = FakeAgent("h/1")
        _ = try await core.hello(hello, certificateName: "h", session: again.session).get()
        #expect(await first.next() == nil, "the old connection was closed")
    }

    /// A reconnect after a network cut the coordinator has not noticed: the old session has
    /// been silent for two heartbeat intervals, so the newcomer takes over and resumes.
    @Test func aSilentSessionIsTakenOverByTheReconnectingAgent() async throws {
        let core = try makeCore()
        let (agent, _) = try await connect(core, "h/1")
        _ = try await core.submit(.init(yaml: "steps:\n  - command: x\n"))
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: agent.session)
        // The old session was last heard just now: the silences below count from here, not
        // from when the test started (under load the setup alone can take a second).
        let lastHeard = ContinuousClock.now
        let lease = try #require(await agent.next()?.lease)
        let reconnect = FakeAgent("h/1")
        let hello = Gantry_V1_Hello.with {
            $0.minVersion = 1
            $0.maxVersion = 2
            $0.agentID = "h/1"
            $0.capacity = 1
            $0.held = [.with { $0.jobID = lease.jobID; $0.attempt = lease.attempt }]
        }
        // Heartbeat interval 1 s: 1.5 s of silence is not enough, 2.5 s is.
        let early = await core.hello(hello, certificateName: "h", session: reconnect.session, now: lastHeard + .milliseconds(1500))
        guard case .failure(.refused(.agentIDInUse, _)) = early else {
            Issue.record("expected a refusal while the old session is fresh, got \(early)")
            return
        }
        let welcome = try await core.hello(hello, certificateName: "h", session: reconnect.session, now: lastHeard + .milliseconds(2500)).get()
        #expect(welcome.resume.first?.abort == false, "the job resumes on the new connection")
        #expect(await agent.next() == nil, "the silent session was closed")
        await core.receive(try chunk(lease, offset: 0, "ok\n"), from: "h/1", session: reconnect.session)
        #expect(await reconnect.next()?.logAck.offset == 3)
    }

    @Test func retryRuleMatching() {
        var job = StoredJob(
            id: "j", pipelineId: "p", position: 0, key: "k", name: "k", state: .running, commands: [], env: [:], agents: [:],
            dependsOn: [], timeoutSeconds: nil, cancelGraceSeconds: 10,
            retry: [RetryRule(.exitStatus(75), limit: 1), RetryRule(.anyExitStatus, limit: 2), RetryRule(.agentLost, limit: 1)],
            retryCounts: [:], cancelReason: nil, attempt: 1, agentId: nil, exitStatus: nil, reason: nil,
            createdAt: Date(), queuedAt: nil, startedAt: nil, finishedAt: nil, logLength: 0)
        #expect(JobLifecycle.retryRule(for: job, lost: false, exitStatus: 75)?.key == "exit_status:75")
        #expect(JobLifecycle.retryRule(for: job, lost: false, exitStatus: 1)?.key == "exit_status:*")
        #expect(JobLifecycle.retryRule(for: job, lost: true, exitStatus: nil)?.key == "agent_lost")
        job.retryCounts = ["exit_status:75": 1, "exit_status:*": 2, "agent_lost": 1]
        #expect(JobLifecycle.retryRule(for: job, lost: false, exitStatus: 75) == nil)
        #expect(JobLifecycle.retryRule(for: job, lost: true, exitStatus: nil) == nil)
    }

    @Test func invalidPipelineStoresNothing() async throws {
        let core = try makeCore()
        await #expect(throws: PipelineError.self) {
            _ = try await core.submit(.init(yaml: "steps:\n  - key: a\n    command: x\n    depends_on: nope\n"))
        }
        await core.flush()
        #expect(try store.jobs().isEmpty)
    }

    @Test func handshakeRefusals() async throws {
        let core = try makeCore()
        let session = AgentSession(agentID: "h/1")
        let tooNew = await core.hello(.with { $0.minVersion = 5; $0.maxVersion = 9; $0.agentID = "h/1" }, certificateName: "h", session: session)
        guard case .failure(.refused(.unsupportedVersion, _)) = tooNew else {
            Issue.record("expected a version refusal")
            return
        }
        let impostor = await core.hello(.with { $0.minVersion = 1; $0.maxVersion = 1; $0.agentID = "hx/1" }, certificateName: "h", session: session)
        guard case .failure(.refused(.agentIDMismatch, _)) = impostor else {
            Issue.record("expected an id refusal")
            return
        }
    }
}
