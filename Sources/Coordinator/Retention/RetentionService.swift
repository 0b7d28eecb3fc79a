import Foundation
import NIOPosix
import ServiceLifecycle

/// Runs the collector at start and then every `settings.interval`, on NIO's thread
/// pool: a run is store reads, short write transactions and unlinks, none of which may
/// stall the lifecycle's single writer or the cooperative pool.
public struct RetentionService: Service {
    let collector: RetentionCollector

    public init(collector: RetentionCollector) {
        self.collector = collector
    }

    public func run() async throws {
        let collector = self.collector
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    _ = try await NIOThreadPool.singleton.runIfActive { try collector.collect(now: Date()) }
                } catch {
                    // A failed run (a busy store, a full disk) leaves everything for the next one.
                    collector.logger.warning("retention run failed: \(error)")
                }
                try await Task.sleep(for: collector.settings.interval)
            }
        }
    }
}
