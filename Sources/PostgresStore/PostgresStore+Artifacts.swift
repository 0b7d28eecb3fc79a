import Foundation
import GRDB
import GantryCoordinator

/// The artifact room on PostgreSQL: the rows `SQLiteStore+Artifacts.swift` keeps, the
/// blobs they name still files in the coordinator's `BlobStore`.
///
/// SQLite runs one write transaction at a time, so its read-then-write methods never
/// interleave. Here coordinators share the database at READ COMMITTED, so each such
/// method either is one statement or first takes a lock (`PostgresLocks`) that makes the
/// rows it reads the latest committed ones and keeps them so until it commits. Text is
/// ordered `COLLATE "C"`, byte by byte as SQLite's BINARY, whatever the database's locale.
extension PostgresStore: ArtifactStore {
    public func artifact(jobID: String, name: String) throws -> StoredArtifact? {
        try pool.read { db in try await db.fetchOne(StoredArtifact.self, Self.artifactSQL, .values(jobID, name)) }
    }

    static let artifactSQL = "SELECT * FROM artifacts WHERE job_id = ? AND name = ?"

    /// Serialized per job (`PostgresLocks.artifacts`): two coordinators storing under
    /// the same name, or the last free places of a full job, decide one after the other,
    /// each seeing what the other committed. Only this method inserts artifact rows.
    public func storeArtifact(_ row: StoredArtifact, maximumPerJob: Int) throws -> ArtifactWrite {
        try pool.write { db in
            try await PostgresLocks.artifacts(ofJob: row.jobId, db)
            // Immutable per attempt: a retry (same job, a later attempt) takes the name over.
            if let existing = try await db.fetchOne(StoredArtifact.self, Self.artifactSQL, .values(row.jobId, row.name)) {
                guard existing.attempt < row.attempt else {
                    return existing.attempt == row.attempt && existing.sha256 == row.sha256 ? .stored(existing) : .conflict(existing)
                }
                try await db.execute("DELETE FROM artifacts WHERE job_id = ? AND name = ?", .values(row.jobId, row.name))
                try await db.insert(row)
                return .replaced(row, previous: existing)
            }
            let count = try await db.scalar(Int.self, "SELECT count(*) FROM artifacts WHERE job_id = ?", .values(row.jobId)) ?? 0
            if count >= maximumPerJob { return .full }
            try await db.insert(row)
            return .stored(row)
        }
    }

    public func artifacts(pipelineID: String, stepKey: String?, limit: Int) throws -> [StoredArtifact] {
        var sql = "SELECT * FROM artifacts WHERE pipeline_id = ?"
        var arguments: [DatabaseValue] = .values(pipelineID)
        if let stepKey {
            sql += " AND step_key = ?"
            arguments += .values(stepKey)
        }
        sql += #" ORDER BY step_key COLLATE "C", name COLLATE "C", job_id COLLATE "C" LIMIT ?"#
        arguments.append(PostgresFragments.limit(limit))
        return try pool.read { [sql, arguments] db in try await db.fetchAll(StoredArtifact.self, sql, arguments) }
    }

    public func artifacts(sha256: String, limit: Int) throws -> [StoredArtifact] {
        try pool.read { db in
            try await db.fetchAll(
                StoredArtifact.self,
                #"SELECT * FROM artifacts WHERE sha256 = ? ORDER BY created_at, job_id COLLATE "C", name COLLATE "C" LIMIT ?"#,
                .values(sha256) + [PostgresFragments.limit(limit)])
        }
    }

    public func artifactExists(sha256: String, size: Int64?, inPipelines pipelineIDs: [String]) throws -> Bool {
        guard !pipelineIDs.isEmpty else { return false }
        var sql = "SELECT 1 AS one FROM artifacts WHERE sha256 = ? AND pipeline_id IN (\(PostgresFragments.markers(pipelineIDs.count)))"
        var arguments: [DatabaseValue] = .values(sha256) + pipelineIDs.map(\.databaseValue)
        if let size {
            sql += " AND size = ?"
            arguments += .values(size)
        }
        return try pool.read { [sql, arguments] db in try await !db.rows(sql + " LIMIT 1", arguments).isEmpty }
    }

    // MARK: - Upload sessions

    public func upload(id: String) throws -> StoredArtifactUpload? {
        try pool.read { db in try await db.fetchOne(StoredArtifactUpload.self, "SELECT * FROM artifact_uploads WHERE id = ?", .values(id)) }
    }

    /// Serialized per job (`PostgresLocks.uploads`): two requests for the same file must
    /// find one session, not open two, and the cap counts what the other committed.
    /// Expiry and deletes running meanwhile only shrink the count.
    public func openUpload(
        _ row: StoredArtifactUpload, maximumOpen: Int
    ) throws -> (opened: StoredArtifactUpload?, dropped: [StoredArtifactUpload]) {
        try pool.write { db in
            try await PostgresLocks.uploads(ofJob: row.jobId, db)
            // An earlier attempt's sessions are abandoned (its token no longer works): gone.
            let dropped = try await db.fetchAll(
                StoredArtifactUpload.self,
                PostgresFragments.ordered("DELETE FROM artifact_uploads WHERE job_id = ? AND attempt < ? RETURNING *", by: Self.sessionOrder),
                .values(row.jobId, row.attempt))
            let open = try await db.fetchAll(
                StoredArtifactUpload.self,
                "SELECT * FROM artifact_uploads WHERE job_id = ? AND attempt >= ? ORDER BY \(Self.sessionOrder)",
                .values(row.jobId, row.attempt))
            if let same = open.first(where: {
                $0.attempt == row.attempt && $0.kind == row.kind && $0.name == row.name && $0.scope == row.scope
                    && $0.size == row.size && $0.sha256 == row.sha256
            }) {
                return (same, dropped)
            }
            guard open.count < maximumOpen else { return (nil, dropped) }
            try await db.insert(row)
            return (row, dropped)
        }
    }

    /// One `UPDATE` of the session's row (`SQLiteStore.moveUploadSQL`): atomic, and
    /// concurrent PATCHes of one session queue on its row lock. A session expired or
    /// dropped meanwhile matches no row, and the caller is told nothing was recorded.
    @discardableResult
    public func moveUpload(id: String, offset: Int64, at: Date) throws -> Bool {
        try pool.write { db in try await db.execute(SQLiteStore.moveUploadSQL, .values(offset, at, id)) == 1 }
    }

    public func deleteUpload(id: String) throws {
        try pool.write { db in _ = try await db.execute("DELETE FROM artifact_uploads WHERE id = ?", .values(id)) }
    }

    /// One statement whose inner `FOR UPDATE` reads each stale row's latest version: a
    /// session another coordinator moved (its `updated_at` now recent) after this
    /// statement began is left out, and one being moved right now (locked) is skipped.
    /// A thousand at a time, as SQLite does.
    public func expireUploads(before: Date) throws -> [StoredArtifactUpload] {
        try pool.write { db in
            try await db.fetchAll(
                StoredArtifactUpload.self,
                PostgresFragments.ordered(
                    """
                    DELETE FROM artifact_uploads WHERE id IN (
                        SELECT id FROM artifact_uploads WHERE updated_at < ? ORDER BY updated_at LIMIT 1000 FOR UPDATE SKIP LOCKED)
                    RETURNING *
                    """, by: #"updated_at, id COLLATE "C""#),
                .values(before))
        }
    }

    // MARK: - Deployments

    /// `ON CONFLICT DO NOTHING` is SQLite's `INSERT OR IGNORE` here: the first download
    /// by a job is recorded, whichever coordinator served it.
    public func recordDeployment(_ row: StoredArtifactDeployment) throws {
        try pool.write { db in _ = try await db.insert(row, "ON CONFLICT (sha256, job_id) DO NOTHING") }
    }

    public func deployments(sha256: String, limit: Int) throws -> [(StoredArtifactDeployment, state: String)] {
        try pool.read { db in
            try await db.rows(SQLiteStore.deploymentsSQL, .values(sha256) + [PostgresFragments.limit(limit)]).map {
                (try StoredArtifactDeployment(row: $0), state: $0["job_state"])
            }
        }
    }

    // MARK: - Caches

    public func cacheEntries(scopes: [String], limit: Int) throws -> [StoredCacheEntry] {
        var sql = "SELECT * FROM caches"
        if !scopes.isEmpty { sql += " WHERE scope IN (\(PostgresFragments.markers(scopes.count)))" }
        sql += #" ORDER BY scope COLLATE "C", key COLLATE "C" LIMIT ?"#
        let arguments = scopes.map(\.databaseValue) + [PostgresFragments.limit(limit)]
        return try pool.read { [sql] db in try await db.fetchAll(StoredCacheEntry.self, sql, arguments) }
    }

    public func cacheEntry(scope: String, key: String) throws -> StoredCacheEntry? {
        try pool.read { db in try await db.fetchOne(StoredCacheEntry.self, Self.cacheEntrySQL, .values(scope, key)) }
    }

    static let cacheEntrySQL = "SELECT * FROM caches WHERE scope = ? AND key = ?"

    /// One `UPDATE`, which never moves last use back: two coordinators serving hits
    /// commit in either order, and the later hit is the one that counts for eviction.
    /// (SQLite's single writer sets the value it is given.)
    public func touchCache(scope: String, key: String, at: Date) throws {
        try pool.write { db in
            _ = try await db.execute(
                "UPDATE caches SET last_used_at = greatest(last_used_at, ?) WHERE scope = ? AND key = ?", .values(at, scope, key))
        }
    }

    /// Serialized per scope (`PostgresLocks.caches`), so concurrent saves each weigh the
    /// entries the other kept; the scope's rows are then read `FOR UPDATE`, so a hit
    /// that touched one is seen, and hits wait until the evictions are committed.
    public func saveCache(_ row: StoredCacheEntry, scopeLimit: UInt64) throws -> (StoredCacheEntry, orphans: [String]) {
        try pool.write { db in
            try await PostgresLocks.caches(ofScope: row.scope, db)
            // The first save under a key wins. `clearCaches` does not take the scope's
            // lock, so the row that made the insert a no-op may be gone by the read.
            while try await db.insert(row, "ON CONFLICT (scope, key) DO NOTHING") == 0 {
                if let existing = try await db.fetchOne(StoredCacheEntry.self, Self.cacheEntrySQL, .values(row.scope, row.key)) {
                    return (existing, [])
                }
            }
            let entries = try await db.fetchAll(
                StoredCacheEntry.self, "SELECT * FROM caches WHERE scope = ? FOR UPDATE", .values(row.scope))
            let evicted = CacheResolution.evictions(in: entries.map(\.candidate), limit: scopeLimit, kept: row.key)
            guard !evicted.isEmpty else { return (row, []) }
            let digests = try await db.rows(
                "DELETE FROM caches WHERE scope = ? AND key IN (\(PostgresFragments.markers(evicted.count))) RETURNING sha256",
                .values(row.scope) + evicted.map(\.databaseValue)
            ).map { $0["sha256"] as String }
            return (row, try await Self.orphans(Set(digests), db))
        }
    }

    /// One `DELETE … RETURNING`: the rows reported are exactly the rows this statement
    /// removed, not a read that another coordinator's save could outdate.
    public func clearCaches(scope: String?, key: String?) throws -> ([StoredCacheEntry], orphans: [String]) {
        var conditions: [String] = []
        var arguments: [DatabaseValue] = []
        if let scope {
            conditions.append("scope = ?")
            arguments += .values(scope)
        }
        if let key {
            conditions.append("key = ?")
            arguments += .values(key)
        }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        let sql = PostgresFragments.ordered("DELETE FROM caches\(filter) RETURNING *", by: Self.cacheOrder)
        return try pool.write { [arguments] db in
            let rows = try await db.fetchAll(StoredCacheEntry.self, sql, arguments)
            return (rows, try await Self.orphans(Set(rows.map(\.sha256)), db))
        }
    }

    public func cacheExists(sha256: String, size: Int64?, scopes: [String]) throws -> Bool {
        guard !scopes.isEmpty else { return false }
        var sql = "SELECT 1 AS one FROM caches WHERE sha256 = ? AND scope IN (\(PostgresFragments.markers(scopes.count)))"
        var arguments: [DatabaseValue] = .values(sha256) + scopes.map(\.databaseValue)
        if let size {
            sql += " AND size = ?"
            arguments += .values(size)
        }
        return try pool.read { [sql, arguments] db in try await !db.rows(sql + " LIMIT 1", arguments).isEmpty }
    }

    /// Read without a lock: the blob store asks this under its own lock right before it
    /// unlinks a blob (`BlobStore.deleteOrphans`), so a row committed by then keeps it.
    public func blobReferenced(_ sha256: String) throws -> Bool {
        try pool.read { db in try await Self.referenced(sha256, db) }
    }

    // MARK: - Shared pieces

    static func referenced(_ sha256: String, _ db: PostgresSession) async throws -> Bool {
        try await db.scalar(
            Bool.self,
            """
            SELECT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = ?1)
                OR EXISTS (SELECT 1 FROM caches WHERE sha256 = ?1)
                OR EXISTS (SELECT 1 FROM artifact_uploads WHERE sha256 = ?1) AS referenced
            """, .values(sha256)) ?? false
    }

    /// The digests of `digests` no row names any more, as the transaction sees them:
    /// candidates for deletion, which `blobReferenced` confirms before each unlink.
    static func orphans(_ digests: Set<String>, _ db: PostgresSession) async throws -> [String] {
        var orphans: [String] = []
        for digest in digests.sorted() {
            if try await !referenced(digest, db) { orphans.append(digest) }
        }
        return orphans
    }

    /// SQLite lists a job's sessions in insertion order; creation time is the nearest.
    static let sessionOrder = #"created_at, id COLLATE "C""#
    static let cacheOrder = #"scope COLLATE "C", key COLLATE "C""#
}
