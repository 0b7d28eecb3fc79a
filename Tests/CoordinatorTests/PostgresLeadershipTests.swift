import Foundation
@testable import GantryCoordinator
@testable import GantryPostgresStore
import Logging
import Testing

/// The leader lease on a real PostgreSQL database, with two stores standing for two
/// coordinators: one leader at a time, the epoch as fence, release and expiry.
@Suite("PostgreSQL leader lease", .timeLimit(.minutes(3)))
struct PostgresLeadershipTests {
    static func twoStores() throws -> (PostgresStore, PostgresStore) {
        let url = try PostgresServer.shared.get().makeDatabase()
        return (try PostgresStore(url: url, logger: Logger(label: "a")), try PostgresStore(url: url, logger: Logger(label: "b")))
    }

    static func claim(_ holder: String, ttl: Duration = .seconds(30)) -> LeadershipClaim {
        LeadershipClaim(holder: holder, agentAddress: "\(holder):7070", httpAddress: "\(holder):7080", ttl: ttl)
    }

    @Test func oneLeaderAtATimeAndARenewalKeepsTheEpoch() throws {
        let (a, b) = try Self.twoStores()
        let first = try a.claimLeadership(Self.claim("a"))
        #expect(first == LeaderRecord(holder: "a", epoch: 1, agentAddress: "a:7070", httpAddress: "a:7080", live: true))
        // B bids while A's lease is live: it learns who leads, and where.
        #expect(try b.claimLeadership(Self.claim("b")) == first)
        #expect(try a.claimLeadership(Self.claim("a")).epoch == 1, "a renewal is not a change of hands")
        #expect(try b.currentLeader() == first)
    }

    @Test func aReleasedLeaseGoesToTheNextBidderWithTheNextEpoch() throws {
        let (a, b) = try Self.twoStores()
        _ = try a.claimLeadership(Self.claim("a"))
        try a.releaseLeadership(holder: "a")
        #expect(try a.currentLeader()?.live == false)
        let taken = try b.claimLeadership(Self.claim("b"))
        #expect(taken.holder == "b" && taken.epoch == 2)
    }

    @Test func anExpiredLeaseIsTakenAndTheOldLeadersCommitsAreRefused() throws {
        let (a, b) = try Self.twoStores()
        let led = try a.claimLeadership(Self.claim("a", ttl: .milliseconds(300)))
        a.fenceCommits(LeaderFence(holder: "a", epoch: led.epoch))
        let pipeline = Fixture.pipeline("p1", at: Fixture.t0)
        try a.commit(StoreBatch([.insertPipeline(pipeline, jobs: [])]))
        // Not yet expired: B cannot take it.
        #expect(try b.claimLeadership(Self.claim("b")).holder == "a")
        // The lease runs out by the database's clock: bid until it has (bounded).
        let deadline = ContinuousClock.now + .seconds(10)
        var taken = try b.claimLeadership(Self.claim("b"))
        while taken.holder != "b", ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            taken = try b.claimLeadership(Self.claim("b"))
        }
        #expect(taken.holder == "b" && taken.epoch == 2)
        let second = Fixture.pipeline("p2", at: Fixture.t0)
        #expect(throws: PostgresStoreError.notLeader("a", 1)) { try a.commit(StoreBatch([.insertPipeline(second, jobs: [])])) }
        #expect(try b.pipeline(id: "p2") == nil, "nothing of the refused commit was stored")
        // A comes back and bids: it is told B leads, and its keeper would stop it.
        #expect(try a.claimLeadership(Self.claim("a")).holder == "b")
    }

    @Test func aStandbyIsWokenByTheNotificationOfAChangeOfHands() async throws {
        let (a, b) = try Self.twoStores()
        let started = ContinuousClock.now
        let waiter = Task { await b.waitForLeadershipChange(timeout: .seconds(90)) }
        // A notification sent before the listener subscribed is lost (the standby's loop
        // re-reads the lease for that reason), so hand the lease back and forth until the
        // waiter wakes, for at most 30 s: far less than its 90 s timeout.
        let handing = Task {
            while !Task.isCancelled && ContinuousClock.now - started < .seconds(30) {
                _ = try? a.claimLeadership(Self.claim("a"))
                try? a.releaseLeadership(holder: "a")
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        await waiter.value
        handing.cancel()
        #expect(ContinuousClock.now - started < .seconds(45), "woken by NOTIFY, not by the timeout")
    }
}
