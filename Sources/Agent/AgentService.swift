import Logging
import ServiceLifecycle

/// `gantry-agent run` as a service (run it in a `TwoSignalServiceGroup`): a graceful shutdown
/// (the first SIGTERM or SIGINT) drains the agent: it takes no new job, finishes the
/// running one and exits once the coordinator has its result. Cancellation (the second
/// signal) cancels the running job (TERM, grace, KILL) and still reports it before
/// returning. A one-shot agent returns by itself after its job.
public struct AgentService: Service {
    let runtime: AgentRuntime
    let logger: Logger

    public init(runtime: AgentRuntime, logger: Logger) {
        self.runtime = runtime
        self.logger = logger
    }

    public func run() async throws {
        // The runtime runs in a task of its own so that cancelling this service does not
        // cancel the connection that still has to report the cancelled job; awaiting its
        // value does not propagate the cancellation.
        let runtime = self.runtime
        let logger = self.logger
        let agent = Task { try await runtime.run() }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await agent.value
            } onGracefulShutdown: {
                logger.notice("shutdown requested: draining (a second SIGTERM or SIGINT cancels the running job)")
                Task { await runtime.drain() }
            }
        } onCancel: {
            logger.notice("shutdown signal received again: cancelling the running job")
            Task { await runtime.cancelAll(reason: "agent stopped by a second shutdown signal") }
        }
    }
}
