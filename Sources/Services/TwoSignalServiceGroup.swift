import Logging
import Synchronization
import ServiceLifecycle
import UnixSignals

/// Runs services in a `ServiceGroup` whose first SIGTERM or SIGINT shuts them down
/// gracefully and whose second one cancels them: the agent drains and then cancels its
/// job, the scaler drains and then cancels its slots' jobs, the coordinator closes its
/// listeners and, if that hangs, is cancelled.
///
/// One `ServiceGroup` cannot do this alone. Its graceful-shutdown and cancellation signals
/// must be disjoint (a precondition of `ServiceGroup.init`), so the same signal cannot mean
/// "drain" the first time and "cancel" the next; and once a graceful shutdown has begun it
/// stops listening, while on Linux libdispatch keeps the signal blocked, so a second SIGTERM
/// would be swallowed without a trace. So the services run in a group whose graceful
/// shutdown signals are `signals`, and the moment that group begins shutting down, a second
/// group starts whose *cancellation* signals are the same `signals`. When one arrives, the
/// first group is cancelled: each service's task is cancelled, and each service decides
/// what that means (`AgentService` cancels the running job and still reports it). A signal
/// sent within the few milliseconds it takes the second group to start is missed.
public struct TwoSignalServiceGroup: Sendable {
    public let services: [ServiceGroupConfiguration.ServiceConfiguration]
    public let signals: [UnixSignal]
    public let logger: Logger
    /// Called once the second stage listens for the signals (tests wait for it).
    let onSecondStage: @Sendable () -> Void

    public init(
        services: [ServiceGroupConfiguration.ServiceConfiguration], signals: [UnixSignal] = [.sigterm, .sigint],
        logger: Logger
    ) {
        self.init(services: services, signals: signals, logger: logger, onSecondStage: {})
    }

    init(
        services: [ServiceGroupConfiguration.ServiceConfiguration], signals: [UnixSignal], logger: Logger,
        onSecondStage: @escaping @Sendable () -> Void
    ) {
        self.services = services
        self.signals = signals
        self.logger = logger
        self.onSecondStage = onSecondStage
    }

    /// A signal source for `signals` kept for the rest of the process, never read.
    ///
    /// When a group ends, its signal sources are cancelled, and a SIGTERM that arrives
    /// after that, while the process is on its way out, would take the default action and
    /// kill it. The scaler does exactly that to a slot the coordinator drained (the agent
    /// is exiting by itself as the scaler's SIGTERM arrives), so the slot ended "killed by
    /// signal 15" instead of exiting 0. With one source alive until exit, such a late
    /// signal is absorbed.
    private static func keepTrapped(_ signals: [UnixSignal]) async {
        guard keptSources.withLock({ $0 == nil }) else { return }
        let sequence = await UnixSignalsSequence(trapping: signals)
        keptSources.withLock { if $0 == nil { $0 = sequence } }
    }

    private static let keptSources = Mutex<UnixSignalsSequence?>(nil)

    private enum Stage: Sendable {
        /// The services' group finished.
        case finished
        /// A second signal arrived.
        case cancelRequested
        /// The second stage ended without a signal (the group finished first).
        case stopped
    }

    /// Runs until every service has finished; rethrows the first service error.
    public func run() async throws {
        await Self.keepTrapped(signals)
        let (shutdownBegan, began) = AsyncStream.makeStream(of: Void.self)
        // Each service is wrapped to report its graceful shutdown: the first report (the
        // group shuts services down one at a time, the last first) arms the second stage.
        // Not a service of its own: a group that is shutting down takes any service that
        // ends out of turn for an error, and the agent may end by itself at any moment.
        let announced = self.services.map { configuration in
            var configuration = configuration
            configuration.service = AnnouncingShutdown(inner: configuration.service) {
                began.yield()
                began.finish()
            }
            return configuration
        }
        let services = ServiceGroup(
            configuration: .init(services: announced, gracefulShutdownSignals: signals, logger: logger))
        let signals = self.signals
        let logger = self.logger
        let onSecondStage = self.onSecondStage
        try await withThrowingTaskGroup(of: Stage.self) { stages in
            stages.addTask {
                do {
                    try await services.run()
                } catch is CancellationError {
                    // Cancelled by the second signal: the services finished as cancelled.
                }
                return .finished
            }
            stages.addTask {
                var iterator = shutdownBegan.makeAsyncIterator()
                guard await iterator.next() != nil, !Task.isCancelled else { return .stopped }
                let second = ServiceGroup(
                    configuration: .init(
                        services: [.init(service: SecondSignal(onStart: onSecondStage))], cancellationSignals: signals,
                        logger: logger))
                try? await second.run()
                return Task.isCancelled ? .stopped : .cancelRequested
            }
            while let stage = try await stages.next() {
                switch stage {
                case .finished:
                    // Stops the second stage if it is waiting.
                    stages.cancelAll()
                    return
                case .cancelRequested:
                    logger.notice("second shutdown signal: cancelling")
                    // Cancels the services' group; the loop then waits for it to finish.
                    stages.cancelAll()
                case .stopped:
                    break
                }
            }
        }
    }
}

/// Runs `inner` unchanged, and reports when the group asks it to shut down gracefully
/// (`inner` hears of it too: handlers add up).
private struct AnnouncingShutdown: Service {
    let inner: any Service
    let onShutdown: @Sendable () -> Void

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await inner.run()
        } onGracefulShutdown: {
            onShutdown()
        }
    }
}

/// The second stage's only service: runs until its group is cancelled by a signal. A
/// group starts its services once it listens for its signals.
private struct SecondSignal: Service {
    let onStart: @Sendable () -> Void

    func run() async {
        onStart()
        try? await gracefulShutdown()
    }
}
