import Foundation
import GRDB

extension SQLiteStore {
    /// Appends an upload's rows inside the turn's transaction: the new jobs, the
    /// pipeline's upload count, and the grown `depends_on` of the jobs that now wait for
    /// the uploaded steps. Fails the batch if the pipeline or a job is unknown.
    static func apply(_ append: PipelineAppend, _ db: Database) throws {
        for job in append.jobs { try job.insert(db) }
        try db.execute(sql: "UPDATE pipelines SET uploads = ? WHERE id = ?", arguments: [append.uploads, append.pipelineID])
        guard db.changesCount == 1 else {
            throw RecordError.recordNotFound(
                databaseTableName: StoredPipeline.databaseTableName, key: ["id": append.pipelineID.databaseValue])
        }
        let encoder = StoredJob.databaseJSONEncoder(for: "depends_on")
        for (id, dependsOn) in append.dependencies.sorted(by: { $0.key < $1.key }) {
            let text = String(decoding: try encoder.encode(dependsOn), as: UTF8.self)
            try db.execute(sql: "UPDATE jobs SET depends_on = ? WHERE id = ?", arguments: [text, id])
            guard db.changesCount == 1 else {
                throw RecordError.recordNotFound(databaseTableName: StoredJob.databaseTableName, key: ["id": id.databaseValue])
            }
        }
    }
}
