import Foundation
import GRDB
import NIOCore

/// The embedded back end of `CoordinatorStore`: pipelines, jobs, attempts and compressed
/// logs in one SQLite file in WAL mode.
///
/// Every method commits before it returns, and callers acknowledge to agents only after
/// that, so `kill -9` loses nothing that was acknowledged. `synchronous=NORMAL` in WAL mode
/// survives a process crash (the WAL is in the OS page cache) but not a power cut; that is
/// the trade-off documented in docs/operations.md. Logs are stored exactly as they arrived,
/// deflate-compressed, one row per chunk.
public final class SQLiteStore: CoordinatorStore {
    private let database: DatabasePool

    public init(path: String) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        configuration.busyMode = .timeout(5)
        self.database = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(self.database)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE pipelines (
                        id TEXT PRIMARY KEY NOT NULL,
                        file TEXT NOT NULL,
                        yaml TEXT NOT NULL,
                        repository TEXT NOT NULL,
                        "commit" TEXT NOT NULL,
                        branch TEXT NOT NULL,
                        env TEXT NOT NULL,
                        created_at DATETIME NOT NULL
                    );
                    CREATE TABLE jobs (
                        id TEXT PRIMARY KEY NOT NULL,
                        pipeline_id TEXT NOT NULL REFERENCES pipelines(id),
                        position INTEGER NOT NULL,
                        key TEXT NOT NULL,
                        name TEXT NOT NULL,
                        state TEXT NOT NULL,
                        commands TEXT NOT NULL,
                        env TEXT NOT NULL,
                        agents TEXT NOT NULL,
                        depends_on TEXT NOT NULL,
                        timeout_seconds INTEGER,
                        attempt INTEGER NOT NULL,
                        lost_count INTEGER NOT NULL,
                        agent_id TEXT,
                        exit_status INTEGER,
                        reason TEXT,
                        created_at DATETIME NOT NULL,
                        queued_at DATETIME,
                        started_at DATETIME,
                        finished_at DATETIME,
                        log_length INTEGER NOT NULL
                    );
                    CREATE INDEX jobs_by_pipeline ON jobs(pipeline_id, position);
                    CREATE INDEX jobs_by_state ON jobs(state);
                    CREATE TABLE attempts (
                        job_id TEXT NOT NULL REFERENCES jobs(id),
                        attempt INTEGER NOT NULL,
                        agent_id TEXT NOT NULL,
                        state TEXT NOT NULL,
                        exit_status INTEGER,
                        reason TEXT,
                        leased_at DATETIME NOT NULL,
                        started_at DATETIME,
                        finished_at DATETIME,
                        PRIMARY KEY (job_id, attempt)
                    );
                    CREATE TABLE log_chunks (
                        job_id TEXT NOT NULL,
                        attempt INTEGER NOT NULL,
                        "offset" INTEGER NOT NULL,
                        raw_length INTEGER NOT NULL,
                        data BLOB NOT NULL,
                        PRIMARY KEY (job_id, attempt, "offset")
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v2: retries and cancel") { db in
            try db.execute(
                sql: """
                    ALTER TABLE jobs ADD COLUMN cancel_grace_seconds INTEGER NOT NULL DEFAULT 10;
                    ALTER TABLE jobs ADD COLUMN retry TEXT NOT NULL DEFAULT '[{"condition":{"agentLost":{}},"limit":2}]';
                    ALTER TABLE jobs ADD COLUMN retry_counts TEXT NOT NULL DEFAULT '{}';
                    ALTER TABLE jobs ADD COLUMN cancel_reason TEXT;
                    """)
        }
        migrator.registerMigration("v3: drop lost_count") { db in
            // Nothing read it: `retry_counts["agent_lost"]` is the count that decides.
            try db.execute(sql: "ALTER TABLE jobs DROP COLUMN lost_count")
        }
        return migrator
    }

    // MARK: - Writes

    /// Applies one lifecycle turn's writes, in order, in one transaction.
    public func commit(_ batch: StoreBatch) throws {
        guard !batch.isEmpty else { return }
        try database.write { db in
            for write in batch.writes {
                switch write {
                case .insertPipeline(let pipeline, let jobs):
                    try pipeline.insert(db)
                    for job in jobs { try job.insert(db) }
                case .updateJob(let job):
                    try job.updateLifecycle(db)
                case .saveAttempt(let attempt):
                    try Self.upsert(attempt, db)
                case .appendLog(let chunk):
                    try db.execute(
                        sql: #"INSERT INTO log_chunks (job_id, attempt, "offset", raw_length, data) VALUES (?, ?, ?, ?, ?)"#,
                        arguments: [chunk.jobID, chunk.attempt, chunk.offset, chunk.rawLength, chunk.data])
                    try db.execute(
                        sql: "UPDATE jobs SET log_length = ? WHERE id = ? AND attempt = ?",
                        arguments: [chunk.offset + chunk.rawLength, chunk.jobID, chunk.attempt])
                }
            }
        }
    }

    static func upsert(_ attempt: StoredAttempt, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO attempts (job_id, attempt, agent_id, state, exit_status, reason, leased_at, started_at, finished_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (job_id, attempt) DO UPDATE SET
                    agent_id = excluded.agent_id, state = excluded.state, exit_status = excluded.exit_status,
                    reason = excluded.reason, started_at = excluded.started_at, finished_at = excluded.finished_at
                """,
            arguments: [
                attempt.jobId, attempt.attempt, attempt.agentId, attempt.state, attempt.exitStatus, attempt.reason,
                attempt.leasedAt, attempt.startedAt, attempt.finishedAt,
            ])
    }

    // MARK: - Pipelines

    public func pipeline(id: String) throws -> StoredPipeline? {
        try database.read { db in try StoredPipeline.fetchOne(db, key: id) }
    }

    public func pipelineExists(id: String) throws -> Bool {
        try database.read { db in try StoredPipeline.exists(db, key: id) }
    }

    public func jobs(pipelineID: String) throws -> [StoredJob] {
        try database.read { db in
            try StoredJob.filter(Column("pipeline_id") == pipelineID).order(Column("position")).fetchAll(db)
        }
    }

    // MARK: - Jobs

    public func job(id: String) throws -> StoredJob? {
        try database.read { db in try StoredJob.fetchOne(db, key: id) }
    }

    public func jobs(states: [JobState]?, limit: Int) throws -> [StoredJob] {
        try database.read { db in
            var request = StoredJob.all()
            if let states { request = request.filter(states.map(\.rawValue).contains(Column("state"))) }
            return try request.order(Column("created_at").desc, Column("position").desc).limit(limit).fetchAll(db)
        }
    }

    /// Jobs that are not finished, in submission order: what the scheduler reloads at start.
    public func unfinishedJobs() throws -> [StoredJob] {
        try database.read { db in
            try StoredJob
                .filter(!JobState.allCases.filter(\.isTerminal).map(\.rawValue).contains(Column("state")))
                .order(Column("created_at"), Column("position"))
                .fetchAll(db)
        }
    }

    public func attempts(jobID: String) throws -> [StoredAttempt] {
        try database.read { db in
            try StoredAttempt.filter(Column("job_id") == jobID).order(Column("attempt")).fetchAll(db)
        }
    }

    // MARK: - Logs

    /// Compressed chunks of an attempt's log whose end lies beyond `from`, in order.
    public func logChunks(jobID: String, attempt: Int, from: Int, limit: Int) throws -> [LogChunkRow] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: #"""
                    SELECT "offset", raw_length, data FROM log_chunks
                    WHERE job_id = ? AND attempt = ? AND "offset" + raw_length > ?
                    ORDER BY "offset" LIMIT ?
                    """#,
                arguments: [jobID, attempt, from, limit]
            ).map { row in
                LogChunkRow(offset: row[0], rawLength: row[1], data: row[2])
            }
        }
    }
}

public struct LogChunkRow: Sendable, Equatable {
    public var offset: Int
    public var rawLength: Int
    /// Deflate-compressed, exactly as the agent sent it.
    public var data: Data

    public init(offset: Int, rawLength: Int, data: Data) {
        self.offset = offset
        self.rawLength = rawLength
        self.data = data
    }
}
