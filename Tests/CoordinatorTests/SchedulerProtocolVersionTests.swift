@testable import GantryCoordinator
import Testing

/// A job whose lease uses version-4 fields goes only to agents that negotiated version 4,
/// on both paths: a job enqueued while agents are ready, and an agent that becomes ready
/// while jobs are queued.
@Suite("Scheduler: protocol versions", .timeLimit(.minutes(1)))
struct SchedulerProtocolVersionTests {
    let t0 = ContinuousClock.now

    @Test func aReadyOldAgentIsPassedOverWhenTheJobIsEnqueued() {
        var s = Scheduler(configuration: .init(leaseTTL: .seconds(15)))
        s.agentConnected(id: "old", labels: [:], capacity: 1, oneShot: false, held: [], protocolVersion: 3, now: t0)
        _ = s.agentReady(id: "old", slots: 1, now: t0)
        #expect(s.enqueue(.init(id: "checkout", selector: [:], minimumProtocol: 4)) == [])
        #expect(s.queue.map(\.id) == ["checkout"])
        // The old agent still takes what it can run.
        #expect(s.enqueue(.init(id: "plain", selector: [:])) == [.lease(job: "plain", agent: "old")])
        s.agentConnected(id: "new", labels: [:], capacity: 1, oneShot: false, held: [], protocolVersion: 4, now: t0)
        #expect(s.agentReady(id: "new", slots: 1, now: t0) == [.lease(job: "checkout", agent: "new")])
    }

    @Test func anOldAgentThatBecomesReadySkipsJobsItCannotRun() {
        var s = Scheduler(configuration: .init(leaseTTL: .seconds(15)))
        _ = s.enqueue(.init(id: "checkout", selector: [:], minimumProtocol: 4))
        _ = s.enqueue(.init(id: "plain", selector: [:]))
        s.agentConnected(id: "old", labels: [:], capacity: 2, oneShot: false, held: [], protocolVersion: 3, now: t0)
        #expect(s.agentReady(id: "old", slots: 2, now: t0) == [.lease(job: "plain", agent: "old")])
        #expect(s.queue.map(\.id) == ["checkout"])
        // A ready agent that speaks the version takes it on enqueue too.
        s.agentConnected(id: "new", labels: [:], capacity: 1, oneShot: false, held: [], protocolVersion: 5, now: t0)
        _ = s.agentReady(id: "new", slots: 1, now: t0)
        #expect(s.queue.isEmpty)
        #expect(s.leases["checkout"] == "new")
    }
}
