import Foundation
@testable import GantryAgent
import GantryProtocol
import Logging
import ServiceLifecycle
import Testing

/// `AgentService` in a `ServiceGroup` against a fake coordinator: a graceful shutdown (what
/// the first SIGTERM triggers) drains, cancellation (the second) cancels the running job and
/// still reports it. The signals themselves are `TwoSignalServiceGroupTests`'.
@Suite("Agent service", .serialized, .timeLimit(.minutes(1)))
struct AgentServiceTests {
    let root = NSTemporaryDirectory() + "gantry-service-\(UUID().uuidString)"

    static func lease(_ commands: [String]) -> Gantry_V1_Lease {
        .with {
            $0.jobID = "job-\(UUID().uuidString)"
            $0.attempt = 1
            $0.commands = commands
            $0.cancelGraceSeconds = 1
        }
    }

    /// Runs the agent against `coordinator` in a service group and hands both to `body`.
    func withAgent(
        _ coordinator: FakeCoordinator, _ body: (ServiceGroup, Task<Void, any Error>) async throws -> Void
    ) async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (server, tls) = try await coordinator.listen()
        defer { server.close(promise: nil) }
        var options = AgentRuntime.Options(
            coordinator: HostPort(host: "127.0.0.1", port: server.localAddress?.port ?? 0), agentID: "h/1", labels: [:],
            workRoot: root + "/work", spoolDirectory: root + "/spool")
        options.useCgroups = false
        let logger = Logger(label: "agent-service-test")
        let service = AgentService(runtime: AgentRuntime(options: options, tls: tls, logger: logger), logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)], logger: logger))
        let running = Task { try await group.run() }
        defer { running.cancel() }
        try await body(group, running)
    }

    @Test func aGracefulShutdownLetsTheRunningJobFinishThenStops() async throws {
        let coordinator = FakeCoordinator(leases: [Self.lease(["echo one", "sleep 0.3", "echo two"])])
        try await withAgent(coordinator) { group, running in
            try await waitFor { coordinator.sent { if case .jobStarted = $0 { true } else { false } } }
            await group.triggerGracefulShutdown()
            try await waitFor { coordinator.sent { if case .drain = $0 { true } else { false } } }
            try await withDeadline(.seconds(20), "the drained agent") { try await running.value }
            #expect(coordinator.finished.map(\.outcome) == [.succeeded])
        }
    }

    @Test func cancellationAfterTheDrainCancelsTheRunningJobAndReportsIt() async throws {
        let coordinator = FakeCoordinator(leases: [Self.lease(["echo started; sleep 30"])])
        try await withAgent(coordinator) { group, running in
            try await waitFor { coordinator.sent { if case .jobStarted = $0 { true } else { false } } }
            await group.triggerGracefulShutdown()
            try await waitFor { coordinator.sent { if case .drain = $0 { true } else { false } } }
            #expect(coordinator.finished.isEmpty, "draining does not stop the job")
            running.cancel()
            try await withDeadline(.seconds(20), "the cancelled agent") { try? await running.value }
            let finished = coordinator.finished
            #expect(finished.map(\.outcome) == [.cancelled], "\(finished)")
            #expect(finished.first?.message.contains("second shutdown signal") == true)
        }
    }
}
