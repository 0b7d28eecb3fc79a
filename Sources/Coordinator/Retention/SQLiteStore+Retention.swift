import Foundation
import GRDB

extension SQLiteStore: RetentionStore {
    /// Schema v14 ("v14: retention"): `kept` (`gantry keep`), and when a pipeline's logs
    /// and artifacts were collected, so the log endpoint can say so and the collector
    /// does not weigh it again.
    static func addRetentionColumns(_ db: Database) throws {
        try db.execute(
            sql: """
                ALTER TABLE pipelines ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE pipelines ADD COLUMN logs_removed_at DATETIME;
                ALTER TABLE pipelines ADD COLUMN artifacts_removed_at DATETIME;
                CREATE INDEX pipelines_by_promotion ON pipelines(artifacts_from) WHERE artifacts_from IS NOT NULL;
                CREATE INDEX pipelines_kept ON pipelines(id) WHERE kept = 1;
                CREATE INDEX pipelines_by_creation ON pipelines(created_at);
                """)
    }

    /// A job state that is not final: its pipeline is running (or waits for approval).
    public static let unfinishedJobStateSQL = "state NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')"

    public func setKept(pipelineID: String, _ kept: Bool) throws -> Bool {
        try database.write { db in
            try db.execute(sql: Self.setKeptSQL, arguments: [kept, pipelineID])
            return db.changesCount > 0
        }
    }

    public static let setKeptSQL = "UPDATE pipelines SET kept = ? WHERE id = ?"
    public static let retentionMarksSQL = "SELECT kept, logs_removed_at FROM pipelines WHERE id = ?"

    public func retentionMarks(pipelineID: String) throws -> (kept: Bool, logsRemovedAt: Date?)? {
        try database.read { db in
            guard let row = try Row.fetchOne(db, sql: Self.retentionMarksSQL, arguments: [pipelineID])
            else { return nil }
            return (row["kept"], row["logs_removed_at"])
        }
    }

    public func protectedPipelines() throws -> Set<String> {
        try database.read { db in try Self.protected(db) }
    }

    /// The pipelines protected in their own right: kept, or running.
    public static let protectedRootsSQL =
        "SELECT id FROM pipelines WHERE kept = 1 UNION SELECT DISTINCT pipeline_id FROM jobs WHERE \(unfinishedJobStateSQL)"

    static func protected(_ db: Database) throws -> Set<String> {
        let roots = try String.fetchSet(db, sql: protectedRootsSQL)
        return try RetentionPlan.protected(roots: roots) { id in
            try String.fetchOne(db, sql: "SELECT artifacts_from FROM pipelines WHERE id = ?", arguments: [id])
        }
    }

    public func retentionCandidates(logs: Bool, artifacts: Bool, limit: Int) throws -> [RetentionCandidate] {
        guard logs || artifacts else { return [] }
        return try database.read { db in
            try Row.fetchAll(db, sql: Self.retentionCandidatesSQL(logs: logs, artifacts: artifacts), arguments: [limit])
                .map(Self.retentionCandidate)
        }
    }

    /// Finished, unkept pipelines with something pending, oldest first; the limit is its
    /// one parameter. `collation` follows the id that breaks ties of `created_at`:
    /// PostgreSQL passes `COLLATE "C"` so ids order byte by byte, as SQLite's BINARY does.
    /// The sum is cast because PostgreSQL's `sum(bigint)` is a `numeric`.
    public static func retentionCandidatesSQL(logs: Bool, artifacts: Bool, collation: String = "") -> String {
        // Not collected yet, or a job finished since (a retry after the collection): its
        // new log and artifacts are weighed like any others.
        let since = { (mark: String) in
            "p.\(mark) IS NULL OR EXISTS (SELECT 1 FROM jobs WHERE pipeline_id = p.id AND finished_at > p.\(mark))"
        }
        var pending: [String] = []
        if logs { pending.append(since("logs_removed_at")) }
        if artifacts { pending.append(since("artifacts_removed_at")) }
        return """
            SELECT p.id, p.created_at,
                (SELECT max(finished_at) FROM jobs WHERE pipeline_id = p.id) AS finished_at,
                (SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM artifacts WHERE pipeline_id = p.id) AS bytes,
                (\(since("logs_removed_at"))) AS logs_pending,
                (\(since("artifacts_removed_at"))) AS artifacts_pending
            FROM pipelines p
            WHERE p.kept = 0 AND (\(pending.joined(separator: " OR ")))
                AND NOT EXISTS (SELECT 1 FROM jobs WHERE pipeline_id = p.id AND \(unfinishedJobStateSQL))
            ORDER BY p.created_at, p.id\(collation) LIMIT ?
            """
    }

    /// A row of `retentionCandidatesSQL`.
    public static func retentionCandidate(_ row: Row) -> RetentionCandidate {
        let created: Date = row["created_at"]
        let finished: Date? = row["finished_at"]
        return RetentionCandidate(
            pipelineID: row["id"], finishedAt: finished ?? created, artifactBytes: row["bytes"],
            logsPending: row["logs_pending"], artifactsPending: row["artifacts_pending"])
    }

    public func totalArtifactBytes() throws -> Int64 {
        try database.read { db in try Int64.fetchOne(db, sql: Self.totalArtifactBytesSQL) ?? 0 }
    }

    public static let totalArtifactBytesSQL = "SELECT CAST(coalesce(sum(size), 0) AS BIGINT) AS total FROM artifacts"

    public func removeLogs(pipelineID: String, at: Date) throws -> Bool {
        let jobs = try database.read { db in
            try String.fetchAll(db, sql: "SELECT id FROM jobs WHERE pipeline_id = ?", arguments: [pipelineID])
        }
        // One job per transaction: a long log is many chunks, and the lifecycle's writes
        // wait behind each transaction.
        for job in jobs {
            let done = try database.write { db -> Bool in
                guard try !Self.protected(db).contains(pipelineID) else { return false }
                try db.execute(sql: "DELETE FROM log_chunks WHERE job_id = ?", arguments: [job])
                return true
            }
            guard done else { return false }
        }
        return try database.write { db in
            guard try !Self.protected(db).contains(pipelineID) else { return false }
            try db.execute(sql: "UPDATE pipelines SET logs_removed_at = ? WHERE id = ?", arguments: [at, pipelineID])
            return true
        }
    }

    public func removeArtifacts(pipelineID: String, at: Date) throws -> [String]? {
        try database.write { db in
            guard try !Self.protected(db).contains(pipelineID) else { return nil }
            let digests = try String.fetchSet(db, sql: "SELECT sha256 FROM artifacts WHERE pipeline_id = ?", arguments: [pipelineID])
            try db.execute(sql: "DELETE FROM artifacts WHERE pipeline_id = ?", arguments: [pipelineID])
            try db.execute(sql: "UPDATE pipelines SET artifacts_removed_at = ? WHERE id = ?", arguments: [at, pipelineID])
            return try digests.sorted().filter { try !Self.referenced($0, db) }
        }
    }

    public func expireCaches(before: Date, limit: Int) throws -> (removed: Int, orphans: [String]) {
        try database.write { db in
            let rows = try StoredCacheEntry.filter(Column("last_used_at") < before).order(Column("last_used_at")).limit(limit).fetchAll(db)
            for row in rows { try row.delete(db) }
            return (rows.count, try Set(rows.map(\.sha256)).sorted().filter { try !Self.referenced($0, db) })
        }
    }
}
