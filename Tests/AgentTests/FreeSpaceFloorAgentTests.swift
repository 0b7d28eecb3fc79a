import Foundation
@testable import GantryAgent
import GantryProtocol
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// The real `AgentRuntime` against a fake coordinator, on a disk the test fills and empties
/// (`Options.measureSpace`): below the floor it withdraws its slots and says why in its
/// heartbeats, a running job still finishes, and once space returns it offers its slots
/// again and the reason clears.
@Suite("Free-space floor, agent", .serialized, .timeLimit(.minutes(5)))
struct FreeSpaceFloorAgentTests {
    let root = NSTemporaryDirectory() + "gantry-floor-\(UUID().uuidString)"

    @Test func belowTheFloorTheAgentWithdrawsAndSaysWhyARunningJobFinishesAndSpaceReturningClearsIt() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let full = Mutex(false)
        let lease = Gantry_V1_Lease.with {
            $0.jobID = "job-floor"
            $0.attempt = 1
            $0.commands = ["sleep 1", "echo done"]
            $0.cancelGraceSeconds = 1
        }
        let coordinator = FakeCoordinator(leases: [lease])
        let (server, tls) = try await coordinator.listen()
        defer { server.close(promise: nil) }
        var options = AgentRuntime.Options(
            coordinator: HostPort(host: "127.0.0.1", port: server.localAddress?.port ?? 0), agentID: "h/1", labels: [:],
            workRoot: root + "/work", spoolDirectory: root + "/spool")
        options.useCgroups = false
        options.minFreeSpace = .bytes(1 << 30)
        options.freeSpaceCheckInterval = .milliseconds(50)
        options.measureSpace = { path in
            FreeSpaceFloor.Space(path: path, available: full.withLock { $0 } ? 1 << 20 : 10 << 30, total: 20 << 30)
        }
        let logger = Logger(label: "floor-test")
        let service = AgentService(runtime: AgentRuntime(options: options, tls: tls, logger: logger), logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)], logger: logger))
        let running = Task { try await group.run() }
        defer { running.cancel() }

        func bodies() -> [Gantry_V1_Envelope.OneOf_Body] { coordinator.all.compactMap(\.body) }
        func reasons() -> [String] { bodies().compactMap { if case .heartbeat(let h) = $0 { h.notReadyReason } else { nil } } }

        // Room on the disk: the agent offers its slot and gets the job.
        try await waitFor(.seconds(60)) { coordinator.sent { if case .jobStarted = $0 { true } else { false } } }
        // The disk fills mid-job: withdrawn and said, the job goes on.
        full.withLock { $0 = true }
        try await waitFor(.seconds(60)) { reasons().last?.contains("low disk space") == true }
        #expect(bodies().contains { if case .ready(let r) = $0 { r.slots == 0 } else { false } })
        try await waitFor(.seconds(60)) { coordinator.finished.count == 1 }
        #expect(coordinator.finished.first?.outcome == .succeeded, "\(coordinator.finished)")
        // Finished and acknowledged while still full: no slot is offered.
        let afterFinish = bodies().count
        try await waitFor(.seconds(60)) {
            bodies().dropFirst(afterFinish).contains { if case .heartbeat(let h) = $0 { !h.notReadyReason.isEmpty } else { false } }
        }
        #expect(!bodies().dropFirst(afterFinish).contains { if case .ready(let r) = $0 { r.slots > 0 } else { false } })
        // Space returns: the slot is offered again and the reason clears.
        full.withLock { $0 = false }
        try await waitFor(.seconds(60)) {
            bodies().dropFirst(afterFinish).contains { if case .ready(let r) = $0 { r.slots == 1 } else { false } }
        }
        try await waitFor(.seconds(60)) { reasons().last == "" }
        await group.triggerGracefulShutdown()
        try await withDeadline(.seconds(60), "the drained agent") { try await running.value }
    }
}
