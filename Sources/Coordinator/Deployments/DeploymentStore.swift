import Foundation
import GRDB

/// A deployment as stored: a finished job of a step with `environment:`, its pipeline's
/// source, and the digests it downloaded (`artifact_deployments`). There is no table of
/// deployments: the jobs are the record, so a deployment cannot disagree with its job.
public struct DeploymentRow: Sendable, Equatable {
    public var job: StoredJob
    public var repository: String
    public var commit: String
    public var branch: String
    /// When the pipeline was created: when the change entered Gantry (`DeliveryMetrics`).
    public var pipelineCreatedAt: Date
    /// How the pipeline started (`api`, `webhook`, `rollback`, …).
    public var source: String
    public var artifacts: [String]
    /// The job's rowid: where a page of `GET /v1/deployments` ends (`DeploymentCursor`).
    public var rowid: Int64 = 0
}

public protocol DeploymentStore: Sendable {
    /// Finished deploying jobs (not skipped), to `environment` or to any, of `project`'s
    /// pipelines or of any, finished at or after `since` if given, newest first, at most
    /// `limit`.
    ///
    /// `before` (a row's `rowid`, from a page's cursor) starts after that deployment.
    func deploymentRows(environment: String?, project: String?, since: Date?, before: Int64?, limit: Int) throws
        -> [DeploymentRow]
    /// The digests a deploying job downloaded.
    func deployedDigests(jobID: String) throws -> [String]
}

extension DeploymentStore {
    public func deploymentRows(environment: String?, project: String?, since: Date?, limit: Int) throws -> [DeploymentRow] {
        try deploymentRows(environment: environment, project: project, since: since, before: nil, limit: limit)
    }
}

extension SQLiteStore: DeploymentStore {
    /// Migration "v17: deployments": the deploying jobs by environment and end.
    static func createDeploymentIndex(_ db: Database) throws {
        try db.execute(
            sql: "CREATE INDEX jobs_by_environment ON jobs(environment, finished_at) WHERE environment IS NOT NULL")
    }

    public func deployedDigests(jobID: String) throws -> [String] {
        try database.read { db in try String.fetchAll(db, sql: Self.deployedDigestsSQL, arguments: [jobID]) }
    }

    public func deploymentRows(environment: String?, project: String?, since: Date?, before: Int64?, limit: Int) throws
        -> [DeploymentRow]
    {
        let query = Self.deploymentsQuery(environment: environment, project: project, since: since, before: before, limit: limit)
        return try database.read { db in
            try Row.fetchAll(db, sql: query.sql, arguments: StatementArguments(query.arguments)).map { row in
                let artifacts = try String.fetchAll(db, sql: Self.deployedDigestsSQL, arguments: [row["id"] as String])
                return try Self.deploymentRow(row, artifacts: artifacts)
            }
        }
    }

    /// Parameter: the job's id.
    public static let deployedDigestsSQL = "SELECT sha256 FROM artifact_deployments WHERE job_id = ? ORDER BY sha256 LIMIT 1000"

    /// `deploymentRows`' statement: its rows become `deploymentRow`s.
    public static func deploymentsQuery(environment: String?, project: String?, since: Date?, before: Int64?, limit: Int)
        -> (sql: String, arguments: [DatabaseValue])
    {
        var sql = """
            SELECT j.rowid AS list_rowid, j.*, p.repository AS p_repository, p."commit" AS p_commit, p.branch AS p_branch,
                p.created_at AS p_created_at, p.source AS p_source
            FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id
            WHERE j.environment IS NOT NULL AND j.finished_at IS NOT NULL AND j.state != 'skipped'
            """
        var arguments: [DatabaseValue] = []
        if let environment {
            sql += " AND j.environment = ?"
            arguments.append(environment.databaseValue)
        }
        if let since {
            sql += " AND j.finished_at >= ?"
            arguments.append(since.databaseValue)
        }
        if let before {
            // The row value is the order below: the page goes on where the last one ended.
            sql += " AND (j.finished_at, j.rowid) < (SELECT finished_at, rowid FROM jobs WHERE rowid = ?)"
            arguments.append(before.databaseValue)
        }
        if let project {
            // A project's pipelines: those its webhook or its schedules started, and the
            // rollbacks that promote one of them.
            sql += """
                 AND (p.id IN (SELECT pipeline_id FROM project_pipelines) OR (p.source = 'rollback'
                     AND p.artifacts_from IN (SELECT pipeline_id FROM project_pipelines)))
                """
            sql = """
                WITH project_pipelines(pipeline_id) AS (
                    SELECT pipeline_id FROM webhook_deliveries WHERE project = ? AND pipeline_id IS NOT NULL
                    UNION SELECT r.pipeline_id FROM schedule_runs r JOIN schedules s ON s.id = r.schedule_id
                        WHERE s.project = ? AND r.pipeline_id IS NOT NULL)
                """ + sql
            arguments = [project.databaseValue, project.databaseValue] + arguments
        }
        sql += " ORDER BY j.finished_at DESC, j.rowid DESC LIMIT ?"
        arguments.append(limit.databaseValue)
        return (sql, arguments)
    }

    /// A row of `deploymentsQuery` with the digests its job downloaded.
    public static func deploymentRow(_ row: Row, artifacts: [String]) throws -> DeploymentRow {
        DeploymentRow(
            job: try StoredJob(row: row), repository: row["p_repository"], commit: row["p_commit"], branch: row["p_branch"],
            pipelineCreatedAt: row["p_created_at"], source: row["p_source"], artifacts: artifacts, rowid: row["list_rowid"])
    }
}
