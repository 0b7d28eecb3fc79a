import Foundation

/// The store as retention uses it (`SQLiteStore+Retention.swift`). Every removal checks
/// again, in its own write transaction, that the pipeline is neither running, kept, nor
/// promoted by one that is: a `gantry keep` or a retry between the decision and the
/// deletion wins.
public protocol RetentionStore: Sendable {
    /// Sets or clears `gantry keep`; false if there is no such pipeline.
    func setKept(pipelineID: String, _ kept: Bool) throws -> Bool
    /// Whether a pipeline is kept and when its logs were removed (nil: never).
    func retentionMarks(pipelineID: String) throws -> (kept: Bool, logsRemovedAt: Date?)?
    /// The running and kept pipelines and everything they promote.
    func protectedPipelines() throws -> Set<String>
    /// Finished, unkept pipelines still holding what the settings collect, oldest first.
    func retentionCandidates(logs: Bool, artifacts: Bool, limit: Int) throws -> [RetentionCandidate]
    func totalArtifactBytes() throws -> Int64
    /// Deletes the pipeline's log chunks (one job per transaction) and marks it; false if
    /// it became protected.
    func removeLogs(pipelineID: String, at: Date) throws -> Bool
    /// Deletes the pipeline's artifact rows and marks it; the digests no row, cache or
    /// session names any more (nil: it became protected).
    func removeArtifacts(pipelineID: String, at: Date) throws -> [String]?
    /// Deletes up to `limit` caches last used before `before`; the orphaned digests.
    func expireCaches(before: Date, limit: Int) throws -> (removed: Int, orphans: [String])
    func blobReferenced(_ sha256: String) throws -> Bool
}
