import Foundation
import GRDB
import GantryCoordinator

extension PostgresStore: MetaDataStore {
    /// Counting the pipeline's keys and adding one are two statements; at READ COMMITTED
    /// two coordinators adding different keys could both count one under the limit and
    /// both insert. The pipeline's advisory lock (`PostgresLocks.metaDataPipeline`) makes
    /// them take turns; overwriting a key, which adds none, takes it too and stays short.
    public func setMetaData(_ row: StoredMetaData, maximumKeys: Int) throws -> MetaDataWrite {
        try pool.write { db in
            try await db.lock(PostgresLocks.metaDataPipeline, row.pipelineId)
            let exists = try await !db.rows(
                "SELECT 1 AS one FROM meta_data WHERE pipeline_id = ? AND key = ?", .values(row.pipelineId, row.key)
            ).isEmpty
            if !exists {
                let count = try await db.scalar(Int.self, "SELECT count(*) FROM meta_data WHERE pipeline_id = ?", .values(row.pipelineId))
                if (count ?? 0) >= maximumKeys { return .full }
            }
            try await db.insert(
                row, "ON CONFLICT (pipeline_id, key) DO UPDATE SET value = excluded.value, job_id = excluded.job_id, updated_at = excluded.updated_at")
            return exists ? .updated : .created
        }
    }

    public func metaData(pipelineID: String, key: String) throws -> StoredMetaData? {
        try pool.read { db in
            try await db.fetchOne(StoredMetaData.self, "SELECT * FROM meta_data WHERE pipeline_id = ? AND key = ?", .values(pipelineID, key))
        }
    }

    /// Keys by their bytes, as SQLite orders them.
    public func metaDataKeys(pipelineID: String, limit: Int) throws -> [String] {
        try pool.read { db in
            try await db.rows("SELECT key FROM meta_data WHERE pipeline_id = ? ORDER BY key COLLATE \"C\" LIMIT ?", .values(pipelineID, limit))
                .map { row -> String in row["key"] }
        }
    }
}
