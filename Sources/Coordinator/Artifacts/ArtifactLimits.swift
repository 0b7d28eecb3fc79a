import Foundation

/// The bounds of the artifact and cache store, with their defaults (`serve` options in
/// parentheses; docs/operations.md, "Artifacts and caches").
public struct ArtifactLimits: Sendable, Equatable {
    /// The largest artifact or cache archive (`--max-artifact-size`, bytes): 4 GiB holds a
    /// release image and refuses a runaway glob before a byte is stored.
    public var maximumArtifactBytes: UInt64 = 4 << 30
    /// Artifacts one job may store (`--max-artifacts-per-job`): `build/**/*.xml` over a
    /// big tree should be archived into one file first.
    public var maximumArtifactsPerJob = 1000
    /// Upload sessions one job may hold open at once: a job uploads its files in turn, so
    /// a few cover retries after a dropped connection.
    public var maximumOpenSessionsPerJob = 16
    /// An upload session not written to for this long is abandoned: its row and part file
    /// are removed (`--artifact-session-ttl`, seconds).
    public var sessionTimeToLive: TimeInterval = 24 * 3600
    /// Bytes of cache archives one scope (`branch:NAME`) may hold before the least
    /// recently used are evicted (`--cache-scope-limit`): 10 GiB.
    public var cacheScopeBytes: UInt64 = 10 << 30
    /// The branch whose caches every other branch may read (`--default-branch`).
    public var defaultBranch = "main"

    public init() {}

    /// Cache keys are rendered by the agent (`swiftpm-{{ checksum "Package.resolved" }}`):
    /// printable, without control characters, at most 512 bytes.
    public static let maximumCacheKeyBytes = 512
    /// Restore keys one resolve may name.
    public static let maximumRestoreKeys = 16

    public static func cacheKeyProblem(_ key: String) -> String? {
        guard !key.isEmpty, key.utf8.count <= maximumCacheKeyBytes else {
            return "a cache key must be 1-\(maximumCacheKeyBytes) bytes"
        }
        guard !key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            return "a cache key must not contain control characters"
        }
        return nil
    }
}
