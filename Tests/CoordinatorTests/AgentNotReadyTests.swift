import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Testing

/// An agent below its free-space floor (issue 13, retention): it withdraws its offer with
/// `Ready{slots: 0}` and says why in its heartbeats; the lifecycle keeps the reason for
/// `gantry agents` until a heartbeat without one, and leases it nothing meanwhile.
extension JobLifecycleTests {
    static let lowDisk = "low disk space: 1.0 GiB free on the filesystem of /work, below the floor of 2.0 GiB (--min-free-space)"

    @Test mutating func aNotReadyReasonIsKeptUntilAHeartbeatWithoutOneAndTheAgentGetsNoLeaseMeanwhile() throws {
        try connect("a/1")
        #expect(lifecycle.agentInfo["a/1"]?.notReadyReason == nil)
        // The agent crosses its floor: it withdraws its slot, then says why.
        _ = lifecycle.agentReady("a/1", slots: 0, now: Self.at(1), wallClock: Self.wall(1))
        let low = lifecycle.heartbeat(.with { $0.notReadyReason = Self.lowDisk }, from: "a/1")
        #expect(low.frames(to: "a/1").last?.isHeartbeatAck == true)
        #expect(lifecycle.agentInfo["a/1"]?.notReadyReason == Self.lowDisk)
        let (submitted, jobs) = try submit("steps:\n  - {key: build, command: make}\n", at: 2)
        #expect(Self.leases(submitted, to: "a/1").isEmpty)
        #expect(lifecycle.jobs[try #require(jobs["build"]).id]?.state == .queued)
        // Still low: the reason stays.
        _ = lifecycle.heartbeat(.with { $0.notReadyReason = Self.lowDisk }, from: "a/1")
        #expect(lifecycle.agentInfo["a/1"]?.notReadyReason == Self.lowDisk)
        // Space returns: a heartbeat without a reason clears it, and `Ready` gets the job.
        _ = lifecycle.heartbeat(.with { $0.sentAtUnixMs = 5 }, from: "a/1")
        #expect(lifecycle.agentInfo["a/1"]?.notReadyReason == nil)
        let ready = lifecycle.agentReady("a/1", slots: 1, now: Self.at(3), wallClock: Self.wall(3))
        #expect(Self.leases(ready, to: "a/1").map(\.jobID) == [jobs["build"]?.id])
    }

    @Test mutating func aReconnectStartsWithoutTheOldReasonAndAnUnknownAgentsHeartbeatStoresNothing() throws {
        try connect("a/1", instance: "one")
        _ = lifecycle.heartbeat(.with { $0.notReadyReason = Self.lowDisk }, from: "a/1")
        #expect(lifecycle.agentInfo["a/1"]?.notReadyReason == Self.lowDisk)
        // The same process reconnects: until it says so again, nothing is known.
        try connect("a/1", instance: "one", at: 1)
        #expect(lifecycle.agentInfo["a/1"]?.notReadyReason == nil)
        _ = lifecycle.heartbeat(.with { $0.notReadyReason = Self.lowDisk }, from: "b/1")
        #expect(lifecycle.agentInfo["b/1"] == nil)
    }
}
