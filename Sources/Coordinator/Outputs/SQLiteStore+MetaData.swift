import Foundation
import GRDB

extension SQLiteStore: MetaDataStore {
    public func setMetaData(_ row: StoredMetaData, maximumKeys: Int) throws -> MetaDataWrite {
        try database.write { db in
            let key: [String: any DatabaseValueConvertible] = ["pipeline_id": row.pipelineId, "key": row.key]
            let exists = try StoredMetaData.exists(db, key: key)
            if !exists {
                let count = try StoredMetaData.filter(Column("pipeline_id") == row.pipelineId).fetchCount(db)
                if count >= maximumKeys { return .full }
            }
            try row.save(db)
            return exists ? .updated : .created
        }
    }

    public func metaData(pipelineID: String, key: String) throws -> StoredMetaData? {
        try database.read { try StoredMetaData.fetchOne($0, key: ["pipeline_id": pipelineID, "key": key]) }
    }

    public func metaDataKeys(pipelineID: String, limit: Int) throws -> [String] {
        try database.read { db in
            try String.fetchAll(
                db, sql: "SELECT key FROM meta_data WHERE pipeline_id = ? ORDER BY key LIMIT ?",
                arguments: [pipelineID, limit])
        }
    }
}
