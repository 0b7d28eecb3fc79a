import Foundation
import GRDB
import GantryCoordinator

/// SQLite's statements: positions are `pipelines.rowid`, an identity column here.
extension PostgresStore: PipelineListingStore {
    public func pipelinePage(
        before: PipelineListing.Position?, branch: String?, repository: String?, limit: Int
    ) throws -> [PipelineListing.Row] {
        guard limit > 0 else { return [] }
        let query = SQLiteStore.pipelinePageQuery(before: before, branch: branch, repository: repository, limit: limit)
        return try pool.read { db in try await db.rows(query.sql, query.arguments).map(SQLiteStore.pipelineListingRow) }
    }

    public func jobGroups(pipelineIDs: [String]) throws -> [String: [PipelineListing.JobGroup]] {
        guard !pipelineIDs.isEmpty else { return [:] }
        let sql = SQLiteStore.jobGroupsSQL(count: pipelineIDs.count)
        let arguments = pipelineIDs.map(\.databaseValue)
        return try pool.read { db in
            var groups: [String: [PipelineListing.JobGroup]] = [:]
            for row in try await db.rows(sql, arguments) { SQLiteStore.addJobGroup(row, to: &groups) }
            return groups
        }
    }
}
