#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension API {
    /// `PUT /v1/pipelines/{id}/meta-data/{key}`: the value to store under the key.
    public struct SetMetaData: Codable, Sendable {
        public var value: String

        public init(value: String) {
            self.value = value
        }
    }

    /// One pipeline meta-data entry (`GET` and the answer to `PUT`).
    public struct MetaData: Codable, Sendable, Equatable {
        public var pipelineId: String
        public var key: String
        public var value: String
        /// The job whose token set it; nil when a user's API token did.
        public var jobId: String?
        public var updatedAt: Date
        /// `PUT` only: true when the key was new.
        public var created: Bool?

        public init(pipelineId: String, key: String, value: String, jobId: String?, updatedAt: Date, created: Bool? = nil) {
            self.pipelineId = pipelineId
            self.key = key
            self.value = value
            self.jobId = jobId
            self.updatedAt = updatedAt
            self.created = created
        }
    }

    /// `GET /v1/pipelines/{id}/meta-data[?limit=N]`: the keys set, sorted, at most `limit`.
    public struct MetaDataKeys: Codable, Sendable, Equatable {
        public var pipelineId: String
        public var keys: [String]
        /// True when more keys exist than were listed.
        public var truncated: Bool

        public init(pipelineId: String, keys: [String], truncated: Bool) {
            self.pipelineId = pipelineId
            self.keys = keys
            self.truncated = truncated
        }
    }
}
