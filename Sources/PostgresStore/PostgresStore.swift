import Foundation
import GRDB
import GantryCoordinator
import Logging
import Synchronization

/// The PostgreSQL back end of `CoordinatorStore` and of every room's store: the same rows
/// as `SQLiteStore`, in a database several coordinators can share.
///
/// Each call blocks until the server answered (`PostgresPool`), and `commit` returns only
/// after `COMMIT` did, so the core's rule holds unchanged: nothing is acknowledged before
/// it is stored. Log chunks are rows of `log_chunks` here too, compressed as the agent
/// sent them: every coordinator serves every log, and `pg_dump` backs up one thing.
public final class PostgresStore: CoordinatorStore {
    public let pool: PostgresPool
    public let location: PostgresLocation
    /// The lease a leader's commits must still hold (`fenceCommits`); nil: one coordinator.
    let fence = Mutex<LeaderFence?>(nil)

    /// Connects, and migrates the schema to this release's (see `PostgresMigrator`).
    public init(location: PostgresLocation, settings: PostgresPool.Settings = .init(), logger: Logger) throws {
        self.location = location
        self.pool = try PostgresPool(location: location, settings: settings, logger: logger)
        do {
            try PostgresMigrator.migrate(pool)
        } catch {
            pool.shutdown()
            throw PostgresStoreError.unavailable(location.redacted, PostgresFailure.describe(error))
        }
    }

    public convenience init(url: String, logger: Logger) throws {
        try self.init(location: PostgresLocation(url: url), logger: logger)
    }

    deinit { pool.shutdown() }

    // MARK: - Writes

    public func commit(_ batch: StoreBatch) throws {
        guard !batch.isEmpty else { return }
        let fence = self.fence.withLock { $0 }
        try pool.write { db in
            if let fence { try await Self.check(fence, db) }
            for write in batch.writes { try await Self.apply(write, db) }
        }
    }

    static func apply(_ write: StoreWrite, _ db: PostgresSession) async throws {
        switch write {
        case .insertPipeline(let pipeline, let jobs):
            try await db.insert(pipeline)
            for job in jobs { try await db.insert(job) }
        case .appendJobs(let append):
            for job in append.jobs { try await db.insert(job) }
            try await db.expectOne(
                "UPDATE pipelines SET uploads = ? WHERE id = ?", .values(append.uploads, append.pipelineID),
                table: "pipelines", key: append.pipelineID)
            let encoder = StoredJob.databaseJSONEncoder(for: "depends_on")
            for (id, dependsOn) in append.dependencies.sorted(by: { $0.key < $1.key }) {
                let text = String(decoding: try encoder.encode(dependsOn), as: UTF8.self)
                try await db.expectOne("UPDATE jobs SET depends_on = ? WHERE id = ?", .values(text, id), table: "jobs", key: id)
            }
        case .updateJob(let job):
            try await db.expectOne(StoredJob.lifecycleUpdate, try job.lifecycleArguments(), table: "jobs", key: job.id)
        case .saveAttempt(let attempt):
            try await db.execute(SQLiteStore.upsertAttemptSQL, SQLiteStore.upsertArguments(attempt))
        case .setMetaData(let rows):
            for row in rows {
                try await db.insert(
                    row, "ON CONFLICT (pipeline_id, key) DO UPDATE SET value = excluded.value, job_id = excluded.job_id, updated_at = excluded.updated_at")
            }
        case .notificationEvents(let events):
            for event in events {
                try await db.execute(
                    SQLiteStore.insertNotificationEventSQL, .values(event.type, event.pipelineId, event.jobId, event.occurredAt))
            }
        case .appendLog(let chunk):
            try await db.execute(
                SQLiteStore.insertChunkSQL, .values(chunk.jobID, chunk.attempt, chunk.offset, chunk.rawLength, chunk.data))
            try await db.execute(SQLiteStore.moveLogLengthSQL, .values(chunk.offset + chunk.rawLength, chunk.jobID, chunk.attempt))
        }
    }

    // MARK: - Reads

    public func pipeline(id: String) throws -> StoredPipeline? {
        try pool.read { db in try await db.fetchOne(StoredPipeline.self, "SELECT * FROM pipelines WHERE id = ?", .values(id)) }
    }

    public func pipelineExists(id: String) throws -> Bool {
        try pool.read { db in try await !db.rows("SELECT 1 AS one FROM pipelines WHERE id = ?", .values(id)).isEmpty }
    }

    public func jobs(pipelineID: String) throws -> [StoredJob] {
        try pool.read { db in try await db.fetchAll(StoredJob.self, SQLiteStore.pipelineJobsSQL, .values(pipelineID)) }
    }

    public func job(id: String) throws -> StoredJob? {
        try pool.read { db in try await db.fetchOne(StoredJob.self, SQLiteStore.jobSQL, .values(id)) }
    }

    public func jobs(states: [JobState]?, limit: Int) throws -> [StoredJob] {
        guard limit > 0, let query = SQLiteStore.newestJobsQuery(states: states, limit: limit) else { return [] }
        return try pool.read { db in try await db.fetchAll(StoredJob.self, query.sql, query.arguments) }
    }

    public func unfinishedJobs() throws -> [StoredJob] {
        try pool.read { db in try await db.fetchAll(StoredJob.self, SQLiteStore.unfinishedJobsSQL) }
    }

    public func attempts(jobID: String) throws -> [StoredAttempt] {
        try pool.read { db in try await db.fetchAll(StoredAttempt.self, SQLiteStore.attemptsSQL, .values(jobID)) }
    }

    public func logChunks(jobID: String, attempt: Int, from: Int, limit: Int) throws -> [LogChunkRow] {
        guard limit > 0 else { return [] }
        return try pool.read { db in
            try await db.rows(SQLiteStore.logChunksSQL, .values(jobID, attempt, from, limit)).map { row in
                LogChunkRow(offset: row["offset"], rawLength: row["raw_length"], data: row["data"])
            }
        }
    }
}

extension PostgresSession {
    /// Runs a statement that must change exactly one row; fails the transaction otherwise.
    func expectOne(_ sql: String, _ arguments: [DatabaseValue], table: String, key: String) async throws {
        guard try await execute(sql, arguments) == 1 else { throw PostgresStoreError.rowNotFound(table: table, key: key) }
    }
}
