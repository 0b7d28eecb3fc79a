import Foundation
import GRDB
import GantryCoordinator

/// SQLite's statements: `rowid` is an identity column here (`PostgresSchema`), so a
/// cursor is the same number on both.
extension PostgresStore: DeploymentStore {
    public func deployedDigests(jobID: String) throws -> [String] {
        try pool.read { db in try await Self.deployedDigests(jobID: jobID, db) }
    }

    public func deploymentRows(environment: String?, project: String?, since: Date?, before: Int64?, limit: Int) throws
        -> [DeploymentRow]
    {
        let query = SQLiteStore.deploymentsQuery(environment: environment, project: project, since: since, before: before, limit: limit)
        return try pool.read { db in
            var deployments: [DeploymentRow] = []
            for row in try await db.rows(query.sql, query.arguments) {
                let artifacts = try await Self.deployedDigests(jobID: row["id"], db)
                deployments.append(try SQLiteStore.deploymentRow(row, artifacts: artifacts))
            }
            return deployments
        }
    }

    static func deployedDigests(jobID: String, _ db: PostgresSession) async throws -> [String] {
        try await db.rows(SQLiteStore.deployedDigestsSQL, .values(jobID)).map { row -> String in row["sha256"] }
    }
}
