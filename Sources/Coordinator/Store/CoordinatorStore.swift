import Foundation
import GRDB
import NIOCore

/// The coordinator's durable state: pipelines, jobs, attempts and compressed logs, in one
/// SQLite file in WAL mode.
///
/// Every method commits before it returns, and callers acknowledge to agents only after
/// that, so `kill -9` loses nothing that was acknowledged. `synchronous=NORMAL` in WAL mode
/// survives a process crash (the WAL is in the OS page cache) but not a power cut; that is
/// the trade-off documented in docs/operations.md. Logs are stored exactly as they arrived,
/// deflate-compressed, one row per chunk.
public final class CoordinatorStore: Sendable {
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
        return migrator
    }

    // MARK: - Pipelines

    /// Stores a pipeline and all its jobs in one transaction.
    public func insert(pipeline: StoredPipeline, jobs: [StoredJob]) throws {
        try database.write { db in
            try pipeline.insert(db)
            for job in jobs { try job.insert(db) }
        }
    }

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

    public func jobs(states: [String]? = nil, limit: Int = 200) throws -> [StoredJob] {
        try database.read { db in
            var request = StoredJob.all()
            if let states { request = request.filter(states.contains(Column("state"))) }
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

    public func update(_ job: StoredJob) throws {
        try database.write { db in try job.updateLifecycle(db) }
    }

    /// Saves several jobs (a state change and what it unblocked) atomically, with the
    /// attempt's new state. An attempt row keeps the `leased_at` of its first write.
    public func update(_ jobs: [StoredJob], attempt: StoredAttempt? = nil) throws {
        try database.write { db in
            for job in jobs { try job.updateLifecycle(db) }
            if let attempt {
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
        }
    }

    public func attempts(jobID: String) throws -> [StoredAttempt] {
        try database.read { db in
            try StoredAttempt.filter(Column("job_id") == jobID).order(Column("attempt")).fetchAll(db)
        }
    }

    // MARK: - Logs

    /// Appends one chunk at `offset` (which must equal the stored length) and moves the
    /// job's log length forward, in one transaction. Returns the new length.
    public func appendLog(jobID: String, attempt: Int, offset: Int, rawLength: Int, data: [UInt8]) throws -> Int {
        try database.write { db in
            try db.execute(
                sql: #"INSERT INTO log_chunks (job_id, attempt, "offset", raw_length, data) VALUES (?, ?, ?, ?, ?)"#,
                arguments: [jobID, attempt, offset, rawLength, Data(data)])
            try db.execute(
                sql: "UPDATE jobs SET log_length = ? WHERE id = ? AND attempt = ?",
                arguments: [offset + rawLength, jobID, attempt])
            return offset + rawLength
        }
    }

    /// Stored length of an attempt's log (0 if none).
    public func logLength(jobID: String, attempt: Int) throws -> Int {
        try database.read { db in
            try Int.fetchOne(
                db,
                sql: #"SELECT MAX("offset" + raw_length) FROM log_chunks WHERE job_id = ? AND attempt = ?"#,
                arguments: [jobID, attempt]) ?? 0
        }
    }

    /// Compressed chunks of an attempt's log whose end lies beyond `from`, in order.
    public func logChunks(jobID: String, attempt: Int, from: Int, limit: Int = 64) throws -> [LogChunkRow] {
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
                let data: Data = row[2]
                return LogChunkRow(offset: row[0], rawLength: row[1], data: [UInt8](data))
            }
        }
    }
}

public struct LogChunkRow: Sendable {
    public var offset: Int
    public var rawLength: Int
    public var data: [UInt8]
}
