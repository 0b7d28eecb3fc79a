@testable import GantryCoordinator
import Testing

@Suite("Scheduler", .timeLimit(.minutes(1)))
struct SchedulerTests {
    let t0 = ContinuousClock.now
    func scheduler(ttl: Duration = .seconds(15)) -> Scheduler {
        Scheduler(configuration: .init(leaseTTL: ttl))
    }

    @Test func queuedJobIsLeasedTheMomentAMatchingAgentIsReady() {
        var s = scheduler()
        #expect(s.enqueue(.init(id: "j1", selector: ["os": "linux"])) == [])
        s.agentConnected(id: "a", labels: ["os": "mac"], capacity: 1, oneShot: false, held: [], now: t0)
        #expect(s.agentReady(id: "a", slots: 1, now: t0) == [])
        s.agentConnected(id: "b", labels: ["os": "linux", "arch": "x86"], capacity: 1, oneShot: false, held: [], now: t0)
        #expect(s.agentReady(id: "b", slots: 1, now: t0) == [.lease(job: "j1", agent: "b")])
        #expect(s.queue.isEmpty)
        #expect(s.leases["j1"] == "b")
    }

    @Test func enqueueLeasesAtOnceToAReadyAgent() {
        var s = scheduler()
        s.agentConnected(id: "a", labels: [:], capacity: 1, oneShot: false, held: [], now: t0)
        _ = s.agentReady(id: "a", slots: 1, now: t0)
        #expect(s.enqueue(.init(id: "j1", selector: [:])) == [.lease(job: "j1", agent: "a")])
        // The slot is used: the next job waits.
        #expect(s.enqueue(.init(id: "j2", selector: [:])) == [])
        s.release(job: "j1")
        #expect(s.agentReady(id: "a", slots: 1, now: t0) == [.lease(job: "j2", agent: "a")])
    }

    @Test func jobsAreLeasedInSubmissionOrderSkippingOnesThatDoNotMatch() {
        var s = scheduler()
        _ = s.enqueue(.init(id: "gpu", selector: ["gpu": "yes"]))
        _ = s.enqueue(.init(id: "first", selector: [:]))
        _ = s.enqueue(.init(id: "second", selector: [:]))
        s.agentConnected(id: "a", labels: [:], capacity: 2, oneShot: false, held: [], now: t0)
        #expect(s.agentReady(id: "a", slots: 2, now: t0) == [.lease(job: "first", agent: "a"), .lease(job: "second", agent: "a")])
        #expect(s.queue.map(\.id) == ["gpu"])
    }

    @Test func oneShotAgentNeverGetsASecondJob() {
        var s = scheduler()
        s.agentConnected(id: "a", labels: [:], capacity: 4, oneShot: true, held: [], now: t0)
        _ = s.enqueue(.init(id: "j1", selector: [:]))
        _ = s.enqueue(.init(id: "j2", selector: [:]))
        #expect(s.agentReady(id: "a", slots: 4, now: t0) == [.lease(job: "j1", agent: "a")])
        s.release(job: "j1")
        #expect(s.agentReady(id: "a", slots: 4, now: t0) == [])
        #expect(s.queue.map(\.id) == ["j2"])
    }

    @Test func drainingAgentGetsNothing() {
        var s = scheduler()
        s.agentConnected(id: "a", labels: [:], capacity: 1, oneShot: false, held: [], now: t0)
        _ = s.agentReady(id: "a", slots: 1, now: t0)
        s.agentDraining(id: "a")
        #expect(s.enqueue(.init(id: "j1", selector: [:])) == [])
        #expect(s.agentReady(id: "a", slots: 1, now: t0) == [])
    }

    @Test func disconnectedAgentKeepsItsLeaseUntilTheTTLThenLosesIt() {
        var s = scheduler(ttl: .seconds(3))
        s.agentConnected(id: "a", labels: [:], capacity: 1, oneShot: false, held: [], now: t0)
        _ = s.agentReady(id: "a", slots: 1, now: t0)
        _ = s.enqueue(.init(id: "j1", selector: [:]))
        s.agentDisconnected(id: "a", now: t0 + .seconds(1))
        #expect(s.tick(now: t0 + .seconds(3)) == [])
        #expect(s.leases["j1"] == "a")
        #expect(s.tick(now: t0 + .seconds(4.1)) == [.lost(job: "j1", agent: "a"), .forgetAgent("a")])
        #expect(s.leases.isEmpty && s.agents.isEmpty)
    }

    @Test func heartbeatsKeepAConnectedAgentAlive() {
        var s = scheduler(ttl: .seconds(3))
        s.agentConnected(id: "a", labels: [:], capacity: 1, oneShot: false, held: [], now: t0)
        for second in 1...10 {
            s.agentSeen(id: "a", now: t0 + .seconds(second))
            #expect(s.tick(now: t0 + .seconds(second) + .milliseconds(500)) == [])
        }
    }

    @Test func reconnectWithinTheTTLReclaimsHeldJobs() {
        var s = scheduler(ttl: .seconds(3))
        s.agentConnected(id: "a", labels: [:], capacity: 1, oneShot: false, held: [], now: t0)
        _ = s.agentReady(id: "a", slots: 1, now: t0)
        _ = s.enqueue(.init(id: "j1", selector: [:]))
        s.agentDisconnected(id: "a", now: t0 + .seconds(1))
        s.agentConnected(id: "a", labels: [:], capacity: 1, oneShot: false, held: ["j1"], now: t0 + .seconds(2))
        #expect(s.tick(now: t0 + .seconds(4)) == [])
        #expect(s.agents["a"]?.running == ["j1"])
        // Capacity is used by the held job: Ready does not lease beyond it.
        _ = s.enqueue(.init(id: "j2", selector: [:]))
        #expect(s.agentReady(id: "a", slots: 1, now: t0 + .seconds(2)) == [])
    }

    @Test func agentThatReconnectsWithoutItsJobLosesItAtOnce() {
        var s = scheduler(ttl: .seconds(30))
        s.agentConnected(id: "a", labels: [:], capacity: 1, oneShot: true, held: [], now: t0)
        _ = s.agentReady(id: "a", slots: 1, now: t0)
        _ = s.enqueue(.init(id: "j1", selector: [:]))
        s.agentDisconnected(id: "a", now: t0 + .seconds(1))
        // Same slot, new process (crashed and restarted): it holds nothing.
        let actions = s.agentConnected(id: "a", labels: [:], capacity: 1, oneShot: true, held: [], now: t0 + .seconds(2))
        #expect(actions == [.lost(job: "j1", agent: "a")])
        #expect(s.leases.isEmpty && s.agents["a"]?.running.isEmpty == true)
        // A fresh one-shot process may take a job again.
        _ = s.enqueue(.init(id: "j2", selector: [:]))
        #expect(s.agentReady(id: "a", slots: 1, now: t0 + .seconds(2)) == [.lease(job: "j2", agent: "a")])
    }

    @Test func adoptedLeaseAfterRestartIsLostIfTheAgentNeverReturns() {
        var s = scheduler(ttl: .seconds(2))
        s.adoptLease(job: "j1", agent: "gone", now: t0)
        #expect(s.tick(now: t0 + .seconds(1)) == [])
        #expect(s.tick(now: t0 + .seconds(2.5)) == [.lost(job: "j1", agent: "gone"), .forgetAgent("gone")])
    }

    @Test func dequeueRemovesAQueuedJob() {
        var s = scheduler()
        _ = s.enqueue(.init(id: "j1", selector: [:]))
        let first = s.dequeue(job: "j1")
        let second = s.dequeue(job: "j1")
        #expect(first && !second)
        s.agentConnected(id: "a", labels: [:], capacity: 1, oneShot: false, held: [], now: t0)
        #expect(s.agentReady(id: "a", slots: 1, now: t0) == [])
    }

    /// The index of agents that can take a job must match a scan of every agent after any
    /// sequence of events, and every lease must go to the agent the old full scan chose.
    @Test func readyIndexStaysInStepWithTheAgents() {
        var s = scheduler(ttl: .seconds(10))
        var random = SplitMix64(seed: 20_261_130)
        let labelSets: [[String: String]] = [[:], ["os": "linux"], ["os": "linux", "arch": "arm"], ["pool": "sim"]]
        var jobs = 0
        var now = t0
        for step in 0..<3_000 {
            let agent = "a\(random.next() % 12)"
            switch random.next() % 9 {
            case 0:
                s.agentConnected(
                    id: agent, labels: labelSets[Int(random.next() % 4)], capacity: Int(random.next() % 3) + 1,
                    oneShot: random.next() % 4 == 0, held: [], now: now)
            case 1, 2:
                _ = s.agentReady(id: agent, slots: Int(random.next() % 3) + 1, now: now)
            case 3, 4:
                jobs += 1
                let selector = labelSets[Int(random.next() % 4)]
                let expected = Self.bruteForceChoice(s, selector: selector)
                let actions = s.enqueue(.init(id: "j\(jobs)", selector: selector))
                #expect(actions == (expected.map { [.lease(job: "j\(jobs)", agent: $0)] } ?? []), "step \(step)")
            case 5:
                if let job = s.leases.keys.sorted().first { s.release(job: job) }
            case 6:
                s.agentDraining(id: agent)
            case 7:
                s.agentDisconnected(id: agent, now: now)
            default:
                now = now + .seconds(Int(random.next() % 4))
                _ = s.tick(now: now)
            }
            #expect(Self.indexMatchesScan(s), "step \(step)")
        }
    }

    /// What the scheduler chose before the index: the matching agent that can take more
    /// with the fewest running jobs, ties by id.
    static func bruteForceChoice(_ s: Scheduler, selector: [String: String]) -> String? {
        s.agents.values
            .filter { $0.canTakeMore && Scheduler.matches(selector: selector, labels: $0.labels) }
            .min { ($0.running.count, $0.id) < ($1.running.count, $1.id) }?.id
    }

    static func indexMatchesScan(_ s: Scheduler) -> Bool {
        let indexed = Set(s.table.available.values.flatMap { $0 })
        let scanned = Set(s.agents.values.filter(\.canTakeMore).map(\.id))
        let grouped = s.table.available.allSatisfy { labels, ids in !ids.isEmpty && ids.allSatisfy { s.agents[$0]?.labels == labels } }
        return indexed == scanned && grouped
    }
}

@Suite("Scheduler scale-in", .timeLimit(.minutes(1)))
struct SchedulerScaleInTests {
    let t0 = ContinuousClock.now

    @Test func drainIdleTakesOnlyIdleConnectedAgentsAndLeasesThemNothing() {
        var s = Scheduler(configuration: .init(leaseTTL: .seconds(15)))
        for id in ["idle", "busy", "gone", "draining"] {
            s.agentConnected(id: id, labels: [:], capacity: 1, oneShot: false, held: [], now: t0)
        }
        _ = s.agentReady(id: "busy", slots: 1, now: t0)
        #expect(s.enqueue(.init(id: "j1", selector: [:])) == [.lease(job: "j1", agent: "busy")])
        _ = s.agentReady(id: "idle", slots: 1, now: t0)
        s.agentDisconnected(id: "gone", now: t0)
        s.agentDraining(id: "draining")
        #expect(s.drainIdle(candidates: ["idle", "busy", "gone", "draining", "unknown"], count: 5) == ["idle"])
        #expect(s.agents["idle"]?.state == .draining)
        // The drained agent had announced a free slot; the next job still waits.
        #expect(s.enqueue(.init(id: "j2", selector: [:])) == [])
        #expect(s.agentReady(id: "idle", slots: 1, now: t0) == [])
        #expect(s.queue.map(\.id) == ["j2"])
    }

    @Test func drainIdleHonoursTheCount() {
        var s = Scheduler(configuration: .init(leaseTTL: .seconds(15)))
        for id in ["a", "b", "c"] { s.agentConnected(id: id, labels: [:], capacity: 1, oneShot: true, held: [], now: t0) }
        #expect(s.drainIdle(candidates: ["c", "b", "a"], count: 2) == ["c", "b"])
        #expect(s.agents["a"]?.state == .idle)
    }

}

/// A small deterministic generator, so a failing sequence can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
