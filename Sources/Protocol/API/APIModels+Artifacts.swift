#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The JSON shapes of artifacts, their upload sessions and caches, shared by the
/// coordinator, the CLI and the agent (which uploads `artifacts:` and downloads
/// `download:` itself). Digests are 64 lowercase hex characters of a sha256, with no
/// `sha256:` prefix, in JSON and in paths alike.
extension API {
    /// `POST /v1/jobs/{id}/artifacts` (job token): open, or resume, the upload of one file.
    public struct CreateArtifactUpload: Codable, Sendable, Equatable {
        /// The artifact's name: a relative path with `/` separators, no `..`, no empty or
        /// `.` segments, at most 1,024 bytes.
        public var name: String
        public var size: UInt64
        public var sha256: String

        public init(name: String, size: UInt64, sha256: String) {
            self.name = name
            self.size = size
            self.sha256 = sha256
        }
    }

    /// `POST /v1/jobs/{id}/cache` (job token): open the upload of a cache archive under
    /// `key`, in the scope the job's branch writes.
    public struct CreateCacheUpload: Codable, Sendable, Equatable {
        public var key: String
        public var size: UInt64
        public var sha256: String

        public init(key: String, size: UInt64, sha256: String) {
            self.key = key
            self.size = size
            self.sha256 = sha256
        }
    }

    /// An upload session (the answer to creating one and to `GET /v1/artifact-uploads/{id}`).
    ///
    /// Bytes go to `PATCH /v1/artifact-uploads/{id}` with an `Upload-Offset: N` header equal
    /// to `offset` (else 409 with the session, so the sender resumes from its `offset`); the
    /// answer is this shape with the new offset. `POST …/complete` verifies size and digest.
    /// When the coordinator already holds the digest, the session is born complete:
    /// `artifact` (or `cache`) is set and no bytes need to be sent.
    public struct ArtifactUpload: Codable, Sendable, Equatable {
        public var id: String
        public var offset: UInt64
        public var size: UInt64
        public var sha256: String
        public var artifact: Artifact?
        public var cache: CacheEntry?

        public init(id: String, offset: UInt64, size: UInt64, sha256: String, artifact: Artifact? = nil, cache: CacheEntry? = nil) {
            self.id = id
            self.offset = offset
            self.size = size
            self.sha256 = sha256
            self.artifact = artifact
            self.cache = cache
        }
    }

    /// One stored artifact: a name in one job, and the bytes it names by digest.
    public struct Artifact: Codable, Sendable, Equatable {
        public var sha256: String
        public var name: String
        public var size: UInt64
        public var pipelineId: String
        public var stepKey: String
        public var jobId: String
        public var attempt: Int
        public var commit: String
        public var agentId: String
        public var createdAt: Date

        public init(
            sha256: String, name: String, size: UInt64, pipelineId: String, stepKey: String, jobId: String, attempt: Int,
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
    }

    /// `GET /v1/pipelines/{id}/artifacts[?step=KEY]`: the pipeline's artifacts, and those
    /// of the pipeline it promotes (`promotedFrom`), which its steps download as their own.
    public struct ArtifactList: Codable, Sendable, Equatable {
        public var pipelineId: String
        public var promotedFrom: String?
        public var artifacts: [Artifact]

        public init(pipelineId: String, promotedFrom: String?, artifacts: [Artifact]) {
            self.pipelineId = pipelineId
            self.promotedFrom = promotedFrom
            self.artifacts = artifacts
        }
    }

    /// Where the bytes of one digest went: a deploying job downloaded them.
    public struct ArtifactDeployment: Codable, Sendable, Equatable {
        public var pipelineId: String
        public var jobId: String
        public var stepKey: String
        public var environment: String
        /// The job's state now (`succeeded` once the deployment succeeded).
        public var state: String
        public var at: Date

        public init(pipelineId: String, jobId: String, stepKey: String, environment: String, state: String, at: Date) {
            self.pipelineId = pipelineId
            self.jobId = jobId
            self.stepKey = stepKey
            self.environment = environment
            self.state = state
            self.at = at
        }
    }

    /// `GET /v1/artifacts/{digest}`: every name and job that stored these bytes (their
    /// provenance), and every deployment that used them.
    public struct ArtifactDetail: Codable, Sendable, Equatable {
        public var sha256: String
        public var size: UInt64
        public var provenance: [Artifact]
        public var deployments: [ArtifactDeployment]

        public init(sha256: String, size: UInt64, provenance: [Artifact], deployments: [ArtifactDeployment]) {
            self.sha256 = sha256
            self.size = size
            self.provenance = provenance
            self.deployments = deployments
        }
    }

    /// One cache entry: a compressed archive under a key, in a scope (`branch:NAME`).
    public struct CacheEntry: Codable, Sendable, Equatable {
        public var scope: String
        public var key: String
        public var sha256: String
        public var size: UInt64
        public var createdAt: Date
        public var lastUsedAt: Date

        public init(scope: String, key: String, sha256: String, size: UInt64, createdAt: Date, lastUsedAt: Date) {
            self.scope = scope
            self.key = key
            self.sha256 = sha256
            self.size = size
            self.createdAt = createdAt
            self.lastUsedAt = lastUsedAt
        }
    }

    /// `GET /v1/jobs/{id}/cache?key=K&restore_key=P…` (job token): the entry to restore,
    /// 404 `cache_miss` when none. `exact` is true when `key` itself matched (then the job
    /// does not save); otherwise the newest entry whose key starts with the first restore
    /// key that matches anything. Its bytes: `GET /v1/jobs/{id}/cache/{digest}/content`.
    public struct CacheHit: Codable, Sendable, Equatable {
        public var entry: CacheEntry
        public var exact: Bool

        public init(entry: CacheEntry, exact: Bool) {
            self.entry = entry
            self.exact = exact
        }
    }

    /// `GET /v1/caches[?scope=S]`, and the answer to `DELETE /v1/caches[?scope=S&key=K]`.
    public struct CacheList: Codable, Sendable, Equatable {
        public var caches: [CacheEntry]

        public init(caches: [CacheEntry]) {
            self.caches = caches
        }
    }

    /// `POST /v1/pipelines/{id}/steps` answers with the jobs the uploaded steps became.
    public struct UploadedSteps: Codable, Sendable, Equatable {
        public var pipelineId: String
        public var jobs: [String]
        /// Set when nothing was added: an earlier attempt of the uploading job (this
        /// number) had uploaded the same file, and `jobs` are the ones it added. A retried
        /// step that uploads its steps again does not run them twice.
        public var alreadyUploadedBy: Int?

        public init(pipelineId: String, jobs: [String], alreadyUploadedBy: Int? = nil) {
            self.pipelineId = pipelineId
            self.jobs = jobs
            self.alreadyUploadedBy = alreadyUploadedBy
        }
    }
}
