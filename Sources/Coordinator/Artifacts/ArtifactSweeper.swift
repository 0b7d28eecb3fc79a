import Foundation
import NIOPosix
import ServiceLifecycle

/// Expires abandoned upload sessions once a minute, so their part files do not wait for
/// the next session to be opened (or the next start) to be removed.
public struct ArtifactSweeper: Service {
    let service: ArtifactService
    let interval: Duration

    public init(service: ArtifactService, interval: Duration = .seconds(60)) {
        self.service = service
        self.interval = interval
    }

    public func run() async throws {
        let service = self.service
        let interval = self.interval
        // A graceful shutdown ends the wait at once rather than after up to a minute.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                // A store read and some unlinks: off the cooperative pool.
                _ = try? await NIOThreadPool.singleton.runIfActive { service.sweep(now: Date()) }
            }
        }
    }
}
