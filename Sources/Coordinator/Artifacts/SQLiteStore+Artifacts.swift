import Foundation
import GRDB

extension SQLiteStore: ArtifactStore {
    /// The schema of Artifacts/ (migration "v13: artifacts and caches"). Digests are the
    /// blobs' names on disk (`BlobStore`); a row per name and job (`artifacts`), per open
    /// upload (`artifact_uploads`), per cache key in a scope (`caches`) and per deploying
    /// job that downloaded a digest (`artifact_deployments`).
    static func createArtifactTables(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE artifacts (
                    sha256 TEXT NOT NULL,
                    name TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    pipeline_id TEXT NOT NULL REFERENCES pipelines(id),
                    step_key TEXT NOT NULL,
                    job_id TEXT NOT NULL REFERENCES jobs(id),
                    attempt INTEGER NOT NULL,
                    "commit" TEXT NOT NULL,
                    agent_id TEXT NOT NULL,
                    created_at DATETIME NOT NULL,
                    PRIMARY KEY (job_id, name)
                ) WITHOUT ROWID;
                CREATE INDEX artifacts_by_pipeline ON artifacts(pipeline_id, step_key, name);
                CREATE INDEX artifacts_by_digest ON artifacts(sha256);
                CREATE TABLE artifact_uploads (
                    id TEXT PRIMARY KEY NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('artifact', 'cache')),
                    job_id TEXT NOT NULL REFERENCES jobs(id),
                    attempt INTEGER NOT NULL,
                    name TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    sha256 TEXT NOT NULL,
                    "offset" INTEGER NOT NULL,
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL
                );
                CREATE INDEX artifact_uploads_by_job ON artifact_uploads(job_id);
                CREATE INDEX artifact_uploads_by_update ON artifact_uploads(updated_at);
                CREATE INDEX artifact_uploads_by_digest ON artifact_uploads(sha256);
                CREATE TABLE artifact_deployments (
                    sha256 TEXT NOT NULL,
                    pipeline_id TEXT NOT NULL REFERENCES pipelines(id),
                    job_id TEXT NOT NULL REFERENCES jobs(id),
                    step_key TEXT NOT NULL,
                    environment TEXT NOT NULL,
                    at DATETIME NOT NULL,
                    PRIMARY KEY (sha256, job_id)
                ) WITHOUT ROWID;
                CREATE TABLE caches (
                    scope TEXT NOT NULL,
                    key TEXT NOT NULL,
                    sha256 TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    created_at DATETIME NOT NULL,
                    last_used_at DATETIME NOT NULL,
                    PRIMARY KEY (scope, key)
                ) WITHOUT ROWID;
                CREATE INDEX caches_by_digest ON caches(sha256);
                ALTER TABLE pipelines ADD COLUMN artifacts_from TEXT REFERENCES pipelines(id);
                """)
    }

    public func artifact(jobID: String, name: String) throws -> StoredArtifact? {
        try database.read { try StoredArtifact.fetchOne($0, key: ["job_id": jobID, "name": name]) }
    }

    public func storeArtifact(_ row: StoredArtifact, maximumPerJob: Int) throws -> ArtifactWrite {
        try database.write { db in
            // Immutable per attempt: a retry (same job, a later attempt) takes the name over.
            if let existing = try StoredArtifact.fetchOne(db, key: ["job_id": row.jobId, "name": row.name]) {
                guard existing.attempt < row.attempt else {
                    return existing.attempt == row.attempt && existing.sha256 == row.sha256 ? .stored(existing) : .conflict(existing)
                }
                try existing.delete(db)
                try row.insert(db)
                return .replaced(row, previous: existing)
            }
            let count = try StoredArtifact.filter(Column("job_id") == row.jobId).fetchCount(db)
            if count >= maximumPerJob { return .full }
            try row.insert(db)
            return .stored(row)
        }
    }

    public func artifacts(pipelineID: String, stepKey: String?, limit: Int) throws -> [StoredArtifact] {
        try database.read { db in
            var request = StoredArtifact.filter(Column("pipeline_id") == pipelineID)
            if let stepKey { request = request.filter(Column("step_key") == stepKey) }
            return try request.order(Column("step_key"), Column("name"), Column("job_id")).limit(limit).fetchAll(db)
        }
    }

    public func artifacts(sha256: String, limit: Int) throws -> [StoredArtifact] {
        try database.read { db in
            try StoredArtifact.filter(Column("sha256") == sha256).order(Column("created_at"), Column("job_id"), Column("name")).limit(limit)
                .fetchAll(db)
        }
    }

    public func artifactExists(sha256: String, size: Int64?, inPipelines pipelineIDs: [String]) throws -> Bool {
        try database.read { db in
            var request = StoredArtifact.filter(Column("sha256") == sha256 && pipelineIDs.contains(Column("pipeline_id")))
            if let size { request = request.filter(Column("size") == size) }
            return try request.fetchCount(db) > 0
        }
    }

    public func upload(id: String) throws -> StoredArtifactUpload? {
        try database.read { try StoredArtifactUpload.fetchOne($0, key: id) }
    }

    public func openUpload(
        _ row: StoredArtifactUpload, maximumOpen: Int
    ) throws -> (opened: StoredArtifactUpload?, dropped: [StoredArtifactUpload]) {
        try database.write { db in
            let all = try StoredArtifactUpload.filter(Column("job_id") == row.jobId).fetchAll(db)
            // An earlier attempt's sessions are abandoned (its token no longer works): gone.
            let dropped = all.filter { $0.attempt < row.attempt }
            for session in dropped { try session.delete(db) }
            let open = all.filter { $0.attempt >= row.attempt }
            if let same = open.first(where: {
                $0.attempt == row.attempt && $0.kind == row.kind && $0.name == row.name && $0.scope == row.scope
                    && $0.size == row.size && $0.sha256 == row.sha256
            }) {
                return (same, dropped)
            }
            guard open.count < maximumOpen else { return (nil, dropped) }
            try row.insert(db)
            return (row, dropped)
        }
    }

    /// Records a session's synced offset. False when the session is gone (expired or
    /// dropped with its attempt while this PATCH ran): nothing was recorded.
    @discardableResult
    public func moveUpload(id: String, offset: Int64, at: Date) throws -> Bool {
        try database.write { db in
            try db.execute(sql: Self.moveUploadSQL, arguments: [offset, at, id])
            return db.changesCount == 1
        }
    }

    /// One statement, so the session's row is the only thing it reads and writes.
    public static let moveUploadSQL = #"UPDATE artifact_uploads SET "offset" = ?, updated_at = ? WHERE id = ?"#

    public func deleteUpload(id: String) throws {
        _ = try database.write { try StoredArtifactUpload.deleteOne($0, key: id) }
    }

    public func expireUploads(before: Date) throws -> [StoredArtifactUpload] {
        try database.write { db in
            let stale = try StoredArtifactUpload.filter(Column("updated_at") < before).limit(1000).fetchAll(db)
            for row in stale { try row.delete(db) }
            return stale
        }
    }

    public func recordDeployment(_ row: StoredArtifactDeployment) throws {
        try database.write { db in try row.insert(db, onConflict: .ignore) }
    }

    public func deployments(sha256: String, limit: Int) throws -> [(StoredArtifactDeployment, state: String)] {
        try database.read { db in
            let rows = try Row.fetchAll(db, sql: Self.deploymentsSQL, arguments: [sha256, limit])
            return try rows.map { (try StoredArtifactDeployment(row: $0), state: $0["job_state"]) }
        }
    }

    /// A deployment row with its job's state as `job_state`: digest, limit.
    public static let deploymentsSQL = """
        SELECT d.*, j.state AS job_state FROM artifact_deployments d JOIN jobs j ON j.id = d.job_id
        WHERE d.sha256 = ? ORDER BY d.at LIMIT ?
        """

    public func cacheEntries(scopes: [String], limit: Int) throws -> [StoredCacheEntry] {
        try database.read { db in
            var request = StoredCacheEntry.all()
            if !scopes.isEmpty { request = request.filter(scopes.contains(Column("scope"))) }
            return try request.order(Column("scope"), Column("key")).limit(limit).fetchAll(db)
        }
    }

    public func cacheEntry(scope: String, key: String) throws -> StoredCacheEntry? {
        try database.read { try StoredCacheEntry.fetchOne($0, key: ["scope": scope, "key": key]) }
    }

    public func touchCache(scope: String, key: String, at: Date) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE caches SET last_used_at = ? WHERE scope = ? AND key = ?", arguments: [at, scope, key])
        }
    }

    public func saveCache(_ row: StoredCacheEntry, scopeLimit: UInt64) throws -> (StoredCacheEntry, orphans: [String]) {
        try database.write { db in
            if let existing = try StoredCacheEntry.fetchOne(db, key: ["scope": row.scope, "key": row.key]) {
                return (existing, [])
            }
            try row.insert(db)
            let entries = try StoredCacheEntry.filter(Column("scope") == row.scope).fetchAll(db)
            let evicted = CacheResolution.evictions(in: entries.map(\.candidate), limit: scopeLimit, kept: row.key)
            var digests: Set<String> = []
            for key in evicted {
                if let entry = try StoredCacheEntry.fetchOne(db, key: ["scope": row.scope, "key": key]) {
                    digests.insert(entry.sha256)
                    try entry.delete(db)
                }
            }
            return (row, try Self.orphans(digests, db))
        }
    }

    public func clearCaches(scope: String?, key: String?) throws -> ([StoredCacheEntry], orphans: [String]) {
        try database.write { db in
            var request = StoredCacheEntry.all()
            if let scope { request = request.filter(Column("scope") == scope) }
            if let key { request = request.filter(Column("key") == key) }
            let rows = try request.fetchAll(db)
            for row in rows { try row.delete(db) }
            return (rows, try Self.orphans(Set(rows.map(\.sha256)), db))
        }
    }

    public func cacheExists(sha256: String, size: Int64?, scopes: [String]) throws -> Bool {
        try database.read { db in
            var request = StoredCacheEntry.filter(Column("sha256") == sha256 && scopes.contains(Column("scope")))
            if let size { request = request.filter(Column("size") == size) }
            return try request.fetchCount(db) > 0
        }
    }

    public func blobReferenced(_ sha256: String) throws -> Bool {
        try database.read { db in try Self.referenced(sha256, db) }
    }

    static func referenced(_ sha256: String, _ db: Database) throws -> Bool {
        try StoredArtifact.filter(Column("sha256") == sha256).fetchCount(db) > 0
            || StoredCacheEntry.filter(Column("sha256") == sha256).fetchCount(db) > 0
            || StoredArtifactUpload.filter(Column("sha256") == sha256).fetchCount(db) > 0
    }

    private static func orphans(_ digests: Set<String>, _ db: Database) throws -> [String] {
        try digests.sorted().filter { try !referenced($0, db) }
    }
}
