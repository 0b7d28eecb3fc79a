@testable import GantryServices
import Logging
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The shutdown every Gantry process uses: the first signal drains, the second cancels.
/// Real signals, sent to this process: SIGUSR2, which nothing else here traps, and only
/// once the group listens for it (a group starts its services after registering its
/// signals), so a missed trap cannot kill the test runner.
@Suite("Two-signal service group", .serialized, .timeLimit(.minutes(1)))
struct TwoSignalServiceGroupTests {
    final class Events: Sendable {
        private let seen = Mutex<[String]>([])
        func add(_ event: String) { seen.withLock { $0.append(event) } }
        var all: [String] { seen.withLock { $0 } }
    }

    /// Drains like the agent: a graceful shutdown does not end it (its job goes on) until
    /// the test finishes the drain or the service is cancelled.
    struct Draining: Service {
        let events: Events
        let drainDone: AsyncStream<Void>

        func run() async {
            events.add("started")
            await withTaskCancellationHandler {
                await withGracefulShutdownHandler {
                    for await _ in drainDone { break }
                } onGracefulShutdown: {
                    events.add("draining")
                }
            } onCancel: {
                events.add("cancelled")
            }
            events.add("finished")
        }
    }

    struct Failing: Service {
        struct Failure: Error {}
        func run() async throws { throw Failure() }
    }

    func group(_ services: [ServiceGroupConfiguration.ServiceConfiguration], _ events: Events) -> TwoSignalServiceGroup {
        TwoSignalServiceGroup(
            services: services, signals: [.sigusr2], logger: Logger(label: "two-signal-test"),
            onSecondStage: { events.add("second stage") })
    }

    @Test func theFirstSignalDrainsAndTheSecondCancels() async throws {
        let events = Events()
        let (drainDone, _) = AsyncStream.makeStream(of: Void.self)
        let group = group([.init(service: Draining(events: events, drainDone: drainDone))], events)
        let running = Task { try await group.run() }
        try await waitFor { events.all.contains("started") }
        kill(getpid(), SIGUSR2)
        try await waitFor { events.all.contains("draining") && events.all.contains("second stage") }
        #expect(!events.all.contains("cancelled"), "the first signal only drains: \(events.all)")
        kill(getpid(), SIGUSR2)
        try await withDeadline(.seconds(30), "the cancelled group") { try await running.value }
        #expect(events.all.contains("cancelled") && events.all.last == "finished", "\(events.all)")
    }

    @Test func aDrainThatCompletesEndsTheGroupAfterOneSignal() async throws {
        let events = Events()
        let (drainDone, finishDrain) = AsyncStream.makeStream(of: Void.self)
        let group = group([.init(service: Draining(events: events, drainDone: drainDone))], events)
        let running = Task { try await group.run() }
        try await waitFor { events.all.contains("started") }
        kill(getpid(), SIGUSR2)
        try await waitFor { events.all.contains("draining") && events.all.contains("second stage") }
        finishDrain.yield()
        try await withDeadline(.seconds(30), "the drained group") { try await running.value }
        #expect(!events.all.contains("cancelled"), "\(events.all)")
    }

    @Test func aServiceThatEndsByItselfEndsTheGroupWithoutASignal() async throws {
        let events = Events()
        let (drainDone, finishDrain) = AsyncStream.makeStream(of: Void.self)
        let group = group(
            [.init(service: Draining(events: events, drainDone: drainDone), successTerminationBehavior: .gracefullyShutdownGroup)],
            events)
        let running = Task { try await group.run() }
        try await waitFor { events.all.contains("started") }
        finishDrain.yield()
        try await withDeadline(.seconds(30), "the group") { try await running.value }
        #expect(events.all.first == "started" && events.all.contains("finished"), "\(events.all)")
        #expect(!events.all.contains("cancelled"))
    }

    @Test func aServiceErrorIsRethrown() async throws {
        let group = group([.init(service: Failing())], Events())
        await #expect(throws: Failing.Failure.self) {
            try await withDeadline(.seconds(30), "the failing group") { try await group.run() }
        }
    }
}
