import Foundation
import GRDB

/// One `meta_data` row: a value a pipeline's step (or a user) stored under a key.
public struct StoredMetaData: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "meta_data"

    public var pipelineId: String
    public var key: String
    public var value: String
    /// The job whose token set it, nil for a user's API token.
    public var jobId: String?
    public var updatedAt: Date

    public init(pipelineId: String, key: String, value: String, jobId: String?, updatedAt: Date) {
        self.pipelineId = pipelineId
        self.key = key
        self.value = value
        self.jobId = jobId
        self.updatedAt = updatedAt
    }

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

/// What `MetaDataStore.setMetaData` did.
public enum MetaDataWrite: Sendable, Equatable {
    case created
    case updated
    /// The pipeline already holds `MetaDataRule.maximumKeysPerPipeline` other keys.
    case full
}

/// Pipeline meta-data. Every method commits before it returns. These writes change no
/// job's state, so they go straight to the store from the request's task, not through
/// the lifecycle's single writer.
public protocol MetaDataStore: Sendable {
    /// Inserts or overwrites (pipeline, key), unless that would make the pipeline hold
    /// more than `maximumKeys` keys; checked and written in one transaction.
    func setMetaData(_ row: StoredMetaData, maximumKeys: Int) throws -> MetaDataWrite
    func metaData(pipelineID: String, key: String) throws -> StoredMetaData?
    /// Keys in order, at most `limit`.
    func metaDataKeys(pipelineID: String, limit: Int) throws -> [String]
}
