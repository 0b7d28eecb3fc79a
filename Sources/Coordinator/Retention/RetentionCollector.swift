import Foundation
import Logging

/// Deletes what the retention settings say has been kept long enough: the I/O around
/// `RetentionPlan`. Blocking (SQLite, unlinks of large blobs): call `collect` on NIO's
/// thread pool (`RetentionService`), never on the lifecycle's single writer or a
/// cooperative thread.
public struct RetentionCollector: Sendable {
    public let store: any RetentionStore
    public let blobs: BlobStore?
    public let settings: RetentionSettings
    let logger: Logger

    public init(store: any RetentionStore, blobs: BlobStore?, settings: RetentionSettings, logger: Logger) {
        self.store = store
        self.blobs = blobs
        self.settings = settings
        self.logger = logger
    }

    /// What one run removed.
    public struct Report: Sendable, Equatable {
        public var logPipelines = 0
        public var artifactPipelines = 0
        public var caches = 0
        /// Blobs whose last row went (deleted unless something named them again).
        public var orphanedBlobs = 0
    }

    /// One run: passes of at most `settings.batch` pipelines until one finds nothing due.
    public func collect(now: Date) throws -> Report {
        var report = Report()
        var passes = 0
        while passes < settings.maximumPasses {
            passes += 1
            let candidates = try store.retentionCandidates(
                logs: settings.collectsLogs, artifacts: settings.collectsArtifacts, limit: settings.batch)
            guard !candidates.isEmpty else { break }
            let total = settings.artifactBytes > 0 ? try store.totalArtifactBytes() : 0
            let plan = RetentionPlan.decide(
                candidates: candidates, protected: try store.protectedPipelines(), totalArtifactBytes: total, settings: settings,
                now: now)
            if plan.isEmpty { break }
            for id in plan.removeLogs where try store.removeLogs(pipelineID: id, at: now) {
                report.logPipelines += 1
            }
            for id in plan.removeArtifacts {
                guard let orphans = try store.removeArtifacts(pipelineID: id, at: now) else { continue }
                report.artifactPipelines += 1
                report.orphanedBlobs += orphans.count
                deleteBlobs(orphans)
            }
        }
        if settings.collectsCaches {
            for _ in 0..<settings.maximumPasses {
                let (removed, orphans) = try store.expireCaches(before: now.addingTimeInterval(-settings.cacheAge), limit: settings.batch)
                report.caches += removed
                report.orphanedBlobs += orphans.count
                deleteBlobs(orphans)
                if removed < settings.batch { break }
            }
        }
        if report != Report() {
            logger.info(
                "retention removed old logs, artifacts and caches",
                metadata: [
                    "log_pipelines": "\(report.logPipelines)", "artifact_pipelines": "\(report.artifactPipelines)",
                    "caches": "\(report.caches)", "blobs": "\(report.orphanedBlobs)",
                ])
        }
        return report
    }

    /// The artifacts room's orphan deletion: under its placement lock, each blob is
    /// unlinked only if nothing names it now (an upload may have just taken it).
    private func deleteBlobs(_ digests: [String]) {
        guard let blobs, !digests.isEmpty else { return }
        let store = self.store
        blobs.deleteOrphans(digests) { try store.blobReferenced($0) }
    }
}
