import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Logging
import Testing

/// The coordinator's side of autoscaling: demand pushed to a scaler, and scale-in that
/// only ever takes idle agents, decided in the same step that stops leasing to them.
@Suite("Scaler sessions", .timeLimit(.minutes(1)))
final class ScalerSessionTests {
    let directory: String
    let core: CoordinatorCore

    init() throws {
        directory = NSTemporaryDirectory() + "gantry-scaler-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        core = try CoordinatorCore(
            store: try SQLiteStore(path: directory + "/gantry.sqlite"),
            configuration: .init(heartbeatInterval: .seconds(1), leaseTTL: .seconds(15)), logger: Logger(label: "test"))
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A session plus its outbound frames, read with a deadline so a missing frame fails
    /// the test instead of hanging it.
    final class Peer: @unchecked Sendable {
        let session: AgentSession
        var frames: AsyncStream<Gantry_V1_Envelope>.Iterator
        init(_ id: String) {
            session = AgentSession(agentID: id)
            frames = session.outbound.makeAsyncIterator()
        }

        /// The next frame satisfying `matching`, skipping others (at most 50).
        func next(_ what: String, _ matching: (Gantry_V1_Envelope) -> Bool) async throws -> Gantry_V1_Envelope {
            for _ in 0..<50 {
                let deadline = Task {
                    try await Task.sleep(for: .seconds(30))
                    self.session.close()
                }
                let frame = await frames.next()
                deadline.cancel()
                guard let frame else { break }
                if matching(frame) { return frame }
            }
            throw TestFailure(description: "no \(what) frame arrived")
        }
    }

    struct TestFailure: Error, CustomStringConvertible { var description: String }

    func hello(_ id: String, labels: [String: String], role: Gantry_V1_Role, maxVersion: UInt32 = 2) -> Gantry_V1_Hello {
        .with {
            $0.minVersion = role == .scaler ? 2 : 1
            $0.maxVersion = maxVersion
            $0.agentID = id
            $0.labels = labels
            $0.capacity = 1
            $0.oneShot = true
            $0.role = role
        }
    }

    func connectAgent(_ id: String) async throws -> Peer {
        let peer = Peer(id)
        _ = try await core.hello(
            hello(id, labels: ["os": "linux"], role: .agent), certificateName: String(id.split(separator: "/")[0]),
            session: peer.session
        ).get()
        return peer
    }

    func send(_ envelope: Gantry_V1_Envelope, from peer: Peer) async {
        await core.receive(envelope, from: peer.session.agentID, session: peer.session)
    }

    func drainIdle(_ ids: [String], count: Int, request: UInt32) -> Gantry_V1_Envelope {
        .with {
            $0.drainIdle = .with {
                $0.requestID = request
                $0.agentIds = ids
                $0.count = UInt32(count)
            }
        }
    }

    @Test func demandIsPushedAndScaleInTakesOnlyIdleAgents() async throws {
        let scaler = Peer("h/scaler")
        let welcome = try await core.hello(
            hello("h/scaler", labels: ["os": "linux"], role: .scaler), certificateName: "h", session: scaler.session
        ).get()
        #expect(welcome.version == 2, "the hello offers at most version 2")
        _ = try await scaler.next("initial demand") { $0.demand.queued == 0 && $0.isDemand }

        _ = try await core.submit(
            .init(yaml: "steps:\n  - {key: a, command: x, agents: {os: linux}}\n  - {key: b, command: x, agents: {os: linux}}\n  - {key: c, command: x, agents: {os: mac}}\n"))
        // The mac job is not this scaler's demand.
        _ = try await scaler.next("demand for 2 queued") { $0.demand.queued == 2 && $0.demand.running == 0 }

        let busy = try await connectAgent("h/scale-1")
        await send(.with { $0.ready = .with { $0.slots = 1 } }, from: busy)
        _ = try await busy.next("lease") { $0.isLease }
        let idle = try await connectAgent("h/scale-2")
        let demand = try await scaler.next("demand with agents") {
            $0.demand.agents.count == 2 && $0.demand.running == 1 && $0.demand.queued == 1
        }.demand
        #expect(demand.agents.map(\.agentID) == ["h/scale-1", "h/scale-2"])
        #expect(demand.agents.map(\.state) == [.busy, .idle])

        // Ask for all three (one under another name): only the idle one of ours drains.
        await send(drainIdle(["h/scale-1", "h/scale-2", "other/scale-1"], count: 3, request: 7), from: scaler)
        let result = try await scaler.next("drain result") { $0.isDrainIdleResult }.drainIdleResult
        #expect(result.requestID == 7 && result.drained == ["h/scale-2"])
        _ = try await idle.next("drain") { $0.isDrain }

        // The drained agent's Ready, racing the queued job, gets nothing.
        await send(.with { $0.ready = .with { $0.slots = 1 } }, from: idle)
        let agents = await core.listAgents()
        #expect(agents.first { $0.id == "h/scale-2" }?.state == "draining")
        let after = await core.demand(forAgentLabels: ["os": "linux"])
        #expect(after.queued == 1 && after.running == 1)
    }

    @Test func aJobLeasedFirstMakesTheAgentBusyForTheDrain() async throws {
        let scaler = Peer("h/scaler")
        _ = try await core.hello(
            hello("h/scaler", labels: [:], role: .scaler), certificateName: "h", session: scaler.session
        ).get()
        let agent = try await connectAgent("h/1")
        await send(.with { $0.ready = .with { $0.slots = 1 } }, from: agent)
        // The job and the drain request race; the actor orders them. Job first: the
        // agent is busy and the drain takes nothing.
        _ = try await core.submit(.init(yaml: "steps:\n  - command: x\n"))
        await send(drainIdle(["h/1"], count: 1, request: 1), from: scaler)
        _ = try await agent.next("lease") { $0.isLease }
        #expect(try await scaler.next("drain result") { $0.isDrainIdleResult }.drainIdleResult.drained == [])
    }

    @Test func aDrainFirstKeepsTheNextJobQueued() async throws {
        let scaler = Peer("h/scaler")
        _ = try await core.hello(
            hello("h/scaler", labels: [:], role: .scaler), certificateName: "h", session: scaler.session
        ).get()
        let agent = try await connectAgent("h/1")
        await send(.with { $0.ready = .with { $0.slots = 1 } }, from: agent)
        await send(drainIdle(["h/1"], count: 1, request: 1), from: scaler)
        #expect(try await scaler.next("drain result") { $0.isDrainIdleResult }.drainIdleResult.drained == ["h/1"])
        let pipeline = try await core.submit(.init(yaml: "steps:\n  - command: x\n"))
        #expect(try await core.pipeline(id: pipeline.id)?.jobs.first?.state == "queued")
        _ = try await agent.next("drain") { $0.isDrain }
    }

    @Test func aScalerSpeakingVersionOneIsRefused() async throws {
        let scaler = Peer("h/scaler")
        let result = await core.hello(
            hello("h/scaler", labels: [:], role: .scaler, maxVersion: 1), certificateName: "h", session: scaler.session)
        guard case .failure(.refused(let code, _)) = result else {
            Issue.record("a version-1 scaler was accepted")
            return
        }
        #expect(code == .unsupportedVersion)
    }

    @Test func aSilentScalerIsDroppedAfterTheTTL() async throws {
        let scaler = Peer("h/scaler")
        // Before the hello, so "10 s later" stays inside the TTL however slowly the test
        // itself is scheduled (the full suite is busy starting processes).
        let start = ContinuousClock.now
        _ = try await core.hello(
            hello("h/scaler", labels: [:], role: .scaler), certificateName: "h", session: scaler.session
        ).get()
        _ = try await scaler.next("initial demand") { $0.isDemand }
        await core.tick(now: start + .seconds(10))
        await send(.with { $0.heartbeat = .with { $0.sentAtUnixMs = 1 } }, from: scaler)
        _ = try await scaler.next("heartbeat ack") { if case .heartbeatAck = $0.body { true } else { false } }
        await core.tick(now: .now + .seconds(16))
        // The session was closed: its stream ends.
        var frames = 0
        while await scaler.frames.next() != nil, frames < 10 { frames += 1 }
        #expect(frames < 10)
        #expect(await core.scalers.isEmpty)
    }

    @Test func demandAndMetricsPerLabelSet() async throws {
        _ = try await core.submit(
            .init(yaml: "steps:\n  - {key: a, command: x, agents: {os: linux}}\n  - {key: b, command: x, agents: {os: linux}}\n  - {key: c, command: x}\n"))
        _ = try await connectAgent("h/1")
        let view = await core.demandView(forAgentLabels: ["os": "linux"])
        #expect(view.queued == 3 && view.running == 0 && view.labels == "os=linux")
        #expect(view.agents["idle"] == 1 && view.agents["busy"] == 0)
        #expect(await core.demandView(forAgentLabels: ["os": "mac"]).queued == 1)

        let text = String(decoding: core.metrics.render(await core.scalingSnapshot()), as: UTF8.self)
        #expect(text.contains(#"gantry_jobs_queued{selector="os=linux"} 2"#))
        #expect(text.contains(#"gantry_jobs_queued{selector=""} 1"#))
        #expect(text.contains(#"gantry_agents{labels="os=linux",state="idle"} 1"#))
        #expect(text.contains("gantry_queue_oldest_wait_seconds"))
    }
}

extension Gantry_V1_Envelope {
    var isLease: Bool { if case .lease = body { true } else { false } }
    var isDrain: Bool { if case .drain = body { true } else { false } }
    var isHeartbeatAck: Bool { if case .heartbeatAck = body { true } else { false } }
    var isFinishAck: Bool { if case .finishAck = body { true } else { false } }
    var isDemand: Bool { if case .demand = body { true } else { false } }
    var isDrainIdleResult: Bool { if case .drainIdleResult = body { true } else { false } }
}
