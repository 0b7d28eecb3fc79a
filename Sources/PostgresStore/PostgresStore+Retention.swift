import Foundation
import GRDB
import GantryCoordinator

/// Retention on PostgreSQL, with `SQLiteStore+Retention.swift`'s statements where the
/// dialects agree.
///
/// The collector decides from plain reads (`protectedPipelines`, `retentionCandidates`),
/// then each removal checks protection again in its own transaction. Under SQLite that
/// transaction excludes every other writer; here it locks what protection depends on
/// first (`lockPromoters`), so a `gantry keep`, a retry or a new promotion committed by
/// another coordinator either is seen by the check or waits until the removal committed.
extension PostgresStore: RetentionStore {
    public func setKept(pipelineID: String, _ kept: Bool) throws -> Bool {
        try pool.write { db in try await db.execute(SQLiteStore.setKeptSQL, .values(kept, pipelineID)) > 0 }
    }

    public func retentionMarks(pipelineID: String) throws -> (kept: Bool, logsRemovedAt: Date?)? {
        try pool.read { db in
            guard let row = try await db.rows(SQLiteStore.retentionMarksSQL, .values(pipelineID)).first else { return nil }
            let kept: Bool = row["kept"]
            let logsRemovedAt: Date? = row["logs_removed_at"]
            return (kept, logsRemovedAt)
        }
    }

    public func protectedPipelines() throws -> Set<String> {
        try pool.read { db in try await Self.protected(db) }
    }

    public func retentionCandidates(logs: Bool, artifacts: Bool, limit: Int) throws -> [RetentionCandidate] {
        guard logs || artifacts else { return [] }
        let sql = SQLiteStore.retentionCandidatesSQL(logs: logs, artifacts: artifacts, collation: #" COLLATE "C""#)
        return try pool.read { db in try await db.rows(sql, [PostgresFragments.limit(limit)]).map(SQLiteStore.retentionCandidate) }
    }

    public func totalArtifactBytes() throws -> Int64 {
        try pool.read { db in try await db.scalar(Int64.self, SQLiteStore.totalArtifactBytesSQL) ?? 0 }
    }

    public func removeLogs(pipelineID: String, at: Date) throws -> Bool {
        let jobs = try pool.read { db in
            try await db.rows("SELECT id FROM jobs WHERE pipeline_id = ?", .values(pipelineID)).map { $0["id"] as String }
        }
        // One job per transaction: a long log is many chunks, and other writers (log
        // appends, the lifecycle) wait behind the locks each one takes.
        for job in jobs {
            let done = try pool.write { db -> Bool in
                guard try await Self.unprotected(pipelineID, db) else { return false }
                try await db.execute("DELETE FROM log_chunks WHERE job_id = ?", .values(job))
                return true
            }
            guard done else { return false }
        }
        return try pool.write { db in
            guard try await Self.unprotected(pipelineID, db) else { return false }
            try await db.execute("UPDATE pipelines SET logs_removed_at = ? WHERE id = ?", .values(at, pipelineID))
            return true
        }
    }

    public func removeArtifacts(pipelineID: String, at: Date) throws -> [String]? {
        try pool.write { db in
            guard try await Self.unprotected(pipelineID, db) else { return nil }
            let digests = try await db.rows("DELETE FROM artifacts WHERE pipeline_id = ? RETURNING sha256", .values(pipelineID))
                .map { $0["sha256"] as String }
            try await db.execute("UPDATE pipelines SET artifacts_removed_at = ? WHERE id = ?", .values(at, pipelineID))
            return try await Self.orphans(Set(digests), db)
        }
    }

    /// One statement: the inner `FOR UPDATE` reads each old entry's latest version, so one
    /// a hit touched after the statement began (its `last_used_at` now recent) is left
    /// out, and one being touched or saved over right now (locked) is skipped until the
    /// next pass.
    public func expireCaches(before: Date, limit: Int) throws -> (removed: Int, orphans: [String]) {
        try pool.write { db in
            let digests = try await db.rows(
                """
                DELETE FROM caches WHERE (scope, key) IN (
                    SELECT scope, key FROM caches WHERE last_used_at < ? ORDER BY last_used_at LIMIT ? FOR UPDATE SKIP LOCKED)
                RETURNING sha256
                """, .values(before) + [PostgresFragments.limit(limit)]
            ).map { $0["sha256"] as String }
            return (digests.count, try await Self.orphans(Set(digests), db))
        }
    }

    // MARK: - Protection

    /// `RetentionPlan.protected` over the kept and running pipelines
    /// (`SQLiteStore.protectedRootsSQL`) and the promotion edges reachable from them,
    /// read in one statement so both come from one snapshot.
    static func protected(_ db: PostgresSession) async throws -> Set<String> {
        let rows = try await db.rows(
            """
            WITH RECURSIVE roots(id) AS (\(SQLiteStore.protectedRootsSQL)),
                reach(id) AS (
                    SELECT id FROM roots
                    UNION
                    SELECT p.artifacts_from FROM pipelines p JOIN reach ON p.id = reach.id WHERE p.artifacts_from IS NOT NULL)
            SELECT reach.id, p.artifacts_from, reach.id IN (SELECT id FROM roots) AS root
            FROM reach LEFT JOIN pipelines p ON p.id = reach.id
            """)
        var roots: Set<String> = []
        var promotes: [String: String] = [:]
        for row in rows {
            let id: String = row["id"]
            if row["root"] as Bool { roots.insert(id) }
            if let source: String = row["artifacts_from"] { promotes[id] = source }
        }
        return RetentionPlan.protected(roots: roots) { promotes[$0] }
    }

    /// Whether the pipeline may lose its logs or artifacts now, holding until the
    /// transaction ends the locks that keep the answer true (`lockPromoters`).
    static func unprotected(_ pipelineID: String, _ db: PostgresSession) async throws -> Bool {
        try await lockPromoters(of: pipelineID, db)
        return try await !protected(db).contains(pipelineID)
    }

    /// Locks the pipeline and every pipeline promoting it, directly or through others,
    /// `FOR UPDATE`, and their jobs `FOR SHARE`: the only pipelines whose state decides
    /// whether it is protected.
    ///
    /// That blocks, until this transaction ends, exactly the writes that could protect
    /// it: `setKept` and appending jobs (both update a pipeline row), a job's state
    /// change such as a retry (an update of a job row), and inserting a pipeline that
    /// promotes one of them (its foreign key check takes a key-share lock, which `FOR
    /// UPDATE` conflicts with). One that committed first is seen by the check that
    /// follows, since at READ COMMITTED each statement reads what was committed before it
    /// began. Rows are locked in id order so two removals never wait on each other in a
    /// cycle; a cycle with a lifecycle batch is broken by the server (deadlock), and the
    /// pool retries the aborted transaction.
    static func lockPromoters(of pipelineID: String, _ db: PostgresSession) async throws {
        let ids = try await db.rows(
            """
            WITH RECURSIVE promoters(id) AS (
                SELECT CAST(? AS text)
                UNION
                SELECT p.id FROM pipelines p JOIN promoters ON p.artifacts_from = promoters.id)
            SELECT p.id FROM pipelines p WHERE p.id IN (SELECT id FROM promoters) ORDER BY p.id FOR UPDATE
            """, .values(pipelineID)
        ).map { $0["id"] as String }
        guard !ids.isEmpty else { return }
        try await db.execute(
            "SELECT id FROM jobs WHERE pipeline_id IN (\(PostgresFragments.markers(ids.count))) ORDER BY id FOR SHARE", ids.map(\.databaseValue))
    }
}
