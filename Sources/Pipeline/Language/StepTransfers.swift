/// What a step moves in and out of its work dir besides its source: the artifacts it
/// uploads after its commands (`artifacts:`, `artifacts_when:`), the artifacts of earlier
/// steps it downloads before them (`download:`), and its cache (`cache:`). The agent does
/// all of it over the coordinator's HTTP API with the job's token (docs/pipeline.md,
/// "Artifacts and caches").
///
/// Stored as one JSON column of the job row (`transfers`, NULL for none) and sent in the
/// lease (fields 18-21). Every string is checked by the parser with the rules the agent
/// applies (`GantryTransferRules`).
public struct StepTransfers: Sendable, Equatable, Codable {
    /// Globs relative to the work dir (`artifacts:`, or Buildkite's `artifact_paths:`).
    public var artifacts: [String]
    /// `artifacts_when: always`: upload after a failed run too.
    public var artifactsAlways: Bool
    public var downloads: [ArtifactDownloadRule]
    public var cache: CacheRule?

    public init(
        artifacts: [String] = [], artifactsAlways: Bool = false, downloads: [ArtifactDownloadRule] = [],
        cache: CacheRule? = nil
    ) {
        self.artifacts = artifacts
        self.artifactsAlways = artifactsAlways
        self.downloads = downloads
        self.cache = cache
    }

    /// About how many bytes it adds to each job row and lease (`storedBytes`).
    var storedBytes: Int {
        var total = artifacts.reduce(0) { $0 + $1.utf8.count + 1 }
        total += downloads.reduce(0) { $0 + $1.step.utf8.count + $1.path.utf8.count + 2 }
        if let cache {
            total += cache.key.utf8.count + cache.paths.reduce(0) { $0 + $1.utf8.count + 1 }
            total += cache.restoreKeys.reduce(0) { $0 + $1.utf8.count + 1 }
        }
        return total
    }

    /// Nothing to move: the job row stores NULL.
    public var isEmpty: Bool { artifacts.isEmpty && downloads.isEmpty && cache == nil }
}

/// One entry of `download:`: the artifacts of step `step` (of this pipeline, or of the
/// pipeline it promotes) whose names match the glob `path`.
public struct ArtifactDownloadRule: Sendable, Equatable, Codable {
    public var step: String
    public var path: String

    public init(step: String, path: String) {
        self.step = step
        self.path = path
    }
}

/// `cache: {key, paths, restore_keys}`: restored before the commands, saved after a
/// successful run whose `key` missed. `key` and `restoreKeys` are `CacheKeyTemplate`s,
/// rendered by the agent; `paths` are relative paths in the work dir.
public struct CacheRule: Sendable, Equatable, Codable {
    public var key: String
    public var paths: [String]
    public var restoreKeys: [String]

    public init(key: String, paths: [String], restoreKeys: [String] = []) {
        self.key = key
        self.paths = paths
        self.restoreKeys = restoreKeys
    }
}
