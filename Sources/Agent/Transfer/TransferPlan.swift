import GantryProtocol
import GantryTransferRules

/// Lease fields 18-21 (`artifact_paths`, `artifacts_always`, `downloads`, `cache`) parsed
/// with the rules the pipeline parser applied (`GantryTransferRules`): the agent checks
/// them again because a coordinator's values are input too, and refuses a lease whose
/// values break them (`CoordinatorValueChecks`).
public struct TransferPlan: Sendable {
    public struct Download: Sendable {
        public var step: String
        public var glob: ArtifactGlob
    }

    public struct Cache: Sendable {
        public var key: CacheKeyTemplate
        public var paths: [String]
        public var restoreKeys: [CacheKeyTemplate]
    }

    public var artifacts: [ArtifactGlob] = []
    public var artifactsAlways = false
    public var downloads: [Download] = []
    public var cache: Cache?

    public init() {}

    public init(lease: Gantry_V1_Lease) throws(TransferError) {
        guard lease.artifactPaths.count <= TransferLimits.maximumArtifactGlobs,
            lease.downloads.count <= TransferLimits.maximumDownloads
        else { throw .limit("the lease names more artifact globs or downloads than the agent accepts") }
        do {
            artifacts = try lease.artifactPaths.map { path throws(ArtifactGlob.SyntaxError) in
                try ArtifactGlob(path, what: "lease.artifact_paths entry")
            }
            artifactsAlways = lease.artifactsAlways
            downloads = try lease.downloads.map { download throws(ArtifactGlob.SyntaxError) in
                Download(step: download.step, glob: try ArtifactGlob(download.path, what: "lease.downloads path"))
            }
        } catch {
            throw .limit(error.message)
        }
        for download in lease.downloads where download.step.isEmpty || download.step.utf8.count > 128 {
            throw .limit("lease.downloads names an empty or overlong step key")
        }
        if lease.hasCache {
            let spec = lease.cache
            guard spec.paths.count <= TransferLimits.maximumCachePaths, !spec.paths.isEmpty,
                spec.restoreKeys.count <= TransferLimits.maximumRestoreKeys
            else { throw .limit("lease.cache names no paths, or more paths or restore keys than the agent accepts") }
            for path in spec.paths {
                if let problem = TransferPath.problem(with: path, what: "lease.cache path") { throw .limit(problem) }
            }
            do {
                cache = Cache(
                    key: try CacheKeyTemplate(spec.key, what: "lease.cache key"), paths: spec.paths,
                    restoreKeys: try spec.restoreKeys.map { key throws(CacheKeyTemplate.SyntaxError) in
                        try CacheKeyTemplate(key, what: "lease.cache restore key")
                    })
            } catch {
                throw .limit(error.message)
            }
        }
    }

    public var isEmpty: Bool { artifacts.isEmpty && downloads.isEmpty && cache == nil }
}
