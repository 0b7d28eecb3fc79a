import Foundation
import GRDB

/// One `artifacts` row: a name in one job, naming bytes by digest, with where they came
/// from. The bytes are stored once per digest (`BlobStore`), however many rows name them.
public struct StoredArtifact: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "artifacts"

    public var sha256: String
    public var name: String
    public var size: Int64
    public var pipelineId: String
    public var stepKey: String
    public var jobId: String
    public var attempt: Int
    public var commit: String
    public var agentId: String
    public var createdAt: Date

    public init(
        sha256: String, name: String, size: Int64, pipelineId: String, stepKey: String, jobId: String, attempt: Int,
        commit: String, agentId: String, createdAt: Date
    ) {
        self.sha256 = sha256
        self.name = name
        self.size = size
        self.pipelineId = pipelineId
        self.stepKey = stepKey
        self.jobId = jobId
        self.attempt = attempt
        self.commit = commit
        self.agentId = agentId
        self.createdAt = createdAt
    }

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

/// One open upload session (`artifact_uploads`): a part file on disk and how much of it
/// is stored. `offset` only moves after the part file is synced, so after a crash the
/// file may be longer than `offset`, never shorter; the next write truncates it.
public struct StoredArtifactUpload: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "artifact_uploads"

    public enum Kind: String, Codable, Sendable {
        case artifact
        case cache
    }

    public var id: String
    public var kind: Kind
    public var jobId: String
    public var attempt: Int
    /// The artifact's name, or the cache's key.
    public var name: String
    /// The cache's scope; empty for an artifact.
    public var scope: String
    public var size: Int64
    public var sha256: String
    public var offset: Int64
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, kind: Kind, jobId: String, attempt: Int, name: String, scope: String, size: Int64, sha256: String,
        offset: Int64, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.kind = kind
        self.jobId = jobId
        self.attempt = attempt
        self.name = name
        self.scope = scope
        self.size = size
        self.sha256 = sha256
        self.offset = offset
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

/// One `caches` row: an archive under a key in a scope.
public struct StoredCacheEntry: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "caches"

    public var scope: String
    public var key: String
    public var sha256: String
    public var size: Int64
    public var createdAt: Date
    public var lastUsedAt: Date

    public init(scope: String, key: String, sha256: String, size: Int64, createdAt: Date, lastUsedAt: Date) {
        self.scope = scope
        self.key = key
        self.sha256 = sha256
        self.size = size
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
    }

    /// The row as eviction weighs it (`CacheResolution.evictions`).
    public var candidate: CacheCandidate {
        CacheCandidate(scope: scope, key: key, size: UInt64(max(size, 0)), createdAt: createdAt, lastUsedAt: lastUsedAt)
    }

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

/// One `artifact_deployments` row: a job with an `environment` downloaded these bytes.
public struct StoredArtifactDeployment: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "artifact_deployments"

    public var sha256: String
    public var pipelineId: String
    public var jobId: String
    public var stepKey: String
    public var environment: String
    public var at: Date

    public init(sha256: String, pipelineId: String, jobId: String, stepKey: String, environment: String, at: Date) {
        self.sha256 = sha256
        self.pipelineId = pipelineId
        self.jobId = jobId
        self.stepKey = stepKey
        self.environment = environment
        self.at = at
    }

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

/// What `ArtifactStore.storeArtifact` did.
public enum ArtifactWrite: Sendable, Equatable {
    /// Recorded (or the same bytes were already recorded under this name for this
    /// attempt of the job).
    case stored(StoredArtifact)
    /// Recorded in place of `previous`, what an earlier attempt of the job stored under
    /// the name: a retry rebuilds its files, and its bytes are the job's now. The caller
    /// deletes `previous`'s blob if nothing else names it.
    case replaced(StoredArtifact, previous: StoredArtifact)
    /// This attempt (or a later one) already stored other bytes under the name: within an
    /// attempt artifacts are immutable, and an earlier attempt never overwrites a later.
    case conflict(StoredArtifact)
    /// The job holds `ArtifactLimits.maximumArtifactsPerJob` artifacts already.
    case full
}

/// Artifacts, upload sessions, caches and deployments. Every method commits before it
/// returns. None of it changes a job's state, so, like meta-data, it goes straight to the
/// store from the request's task, never through the lifecycle's single writer.
public protocol ArtifactStore: Sendable {
    func artifact(jobID: String, name: String) throws -> StoredArtifact?
    /// Records `row` unless the job holds other bytes under its name from the same or a
    /// later attempt, or is full; replaces what an earlier attempt stored under the name.
    func storeArtifact(_ row: StoredArtifact, maximumPerJob: Int) throws -> ArtifactWrite
    func artifacts(pipelineID: String, stepKey: String?, limit: Int) throws -> [StoredArtifact]
    func artifacts(sha256: String, limit: Int) throws -> [StoredArtifact]
    /// Whether a row of `pipelineIDs` names these bytes (with this size, when given).
    func artifactExists(sha256: String, size: Int64?, inPipelines pipelineIDs: [String]) throws -> Bool

    func upload(id: String) throws -> StoredArtifactUpload?
    /// The job's open session for the same file (attempt, kind, name, scope, size and
    /// digest) if there is one, so asking again resumes it; else inserts `row`, unless the
    /// job already holds `maximumOpen` sessions (nil then). Sessions of the job's earlier
    /// attempts are dropped first, and returned (their part files go next): a retry must
    /// not find its predecessor's abandoned sessions counted against it.
    func openUpload(_ row: StoredArtifactUpload, maximumOpen: Int) throws -> (opened: StoredArtifactUpload?, dropped: [StoredArtifactUpload])
    /// False when the session is gone: nothing was recorded.
    @discardableResult
    func moveUpload(id: String, offset: Int64, at: Date) throws -> Bool
    func deleteUpload(id: String) throws
    /// Removes sessions untouched since `before` and returns them (their part files go next).
    func expireUploads(before: Date) throws -> [StoredArtifactUpload]

    func recordDeployment(_ row: StoredArtifactDeployment) throws
    /// Deployments of these bytes with their jobs' current states.
    func deployments(sha256: String, limit: Int) throws -> [(StoredArtifactDeployment, state: String)]

    func cacheEntries(scopes: [String], limit: Int) throws -> [StoredCacheEntry]
    func cacheEntry(scope: String, key: String) throws -> StoredCacheEntry?
    func touchCache(scope: String, key: String, at: Date) throws
    /// Inserts `row` (the first saved under a key wins) and evicts the least recently used
    /// entries of its scope beyond `scopeLimit`; returns the row kept and the digests no
    /// row names any more, whose blobs the caller deletes.
    func saveCache(_ row: StoredCacheEntry, scopeLimit: UInt64) throws -> (StoredCacheEntry, orphans: [String])
    /// Deletes entries (all, one scope's, or one key's) and returns them and the orphaned digests.
    func clearCaches(scope: String?, key: String?) throws -> ([StoredCacheEntry], orphans: [String])
    /// Whether a cache in one of `scopes` names these bytes (with this size, when given).
    func cacheExists(sha256: String, size: Int64?, scopes: [String]) throws -> Bool
    /// Whether any artifact, cache or open session names these bytes.
    func blobReferenced(_ sha256: String) throws -> Bool
}

/// How a promoted pipeline's artifacts resolve, pure over rows.
///
/// The rule: a step key that is a step of the source pipeline resolves to the source's
/// artifacts only; any other key to the pipeline's own. Promotion means exactly the
/// promoted digests, and one answer per step keeps every reader (the agent keeps the
/// newest row per name, the CLI the first listed) on the same bytes.
enum PromotedArtifacts {
    static func resolve(own: [StoredArtifact], source: [StoredArtifact], sourceKeys: Set<String>) -> [StoredArtifact] {
        own.filter { !sourceKeys.contains($0.stepKey) } + source
    }
}
