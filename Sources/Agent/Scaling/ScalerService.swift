import Logging
import ServiceLifecycle

/// `gantry-agent scale` as a service: a graceful shutdown stops scaling and drains the
/// slots the scaler started (their running jobs finish); cancellation cancels those jobs.
public struct ScalerService: Service {
    let scaler: Autoscaler
    let logger: Logger

    public init(scaler: Autoscaler, logger: Logger) {
        self.scaler = scaler
        self.logger = logger
    }

    public func run() async throws {
        let scaler = self.scaler
        let logger = self.logger
        let scaling = Task { try await scaler.run() }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await scaling.value
            } onGracefulShutdown: {
                logger.notice("shutdown requested: stopping; draining the slots this scaler started")
                Task { await scaler.stop() }
            }
        } onCancel: {
            logger.notice("shutdown signal received again: cancelling the slots' jobs")
            Task { await scaler.cancelSlots() }
        }
    }
}
