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
    /// Internal so each room's store extension (`SQLiteStore+Identity.swift`, …) shares
    /// the one pool and its transactions.
    let database: DatabasePool

    public convenience init(path: String) throws {
        try self.init(path: path, migratingUpTo: nil)
    }

    /// `migratingUpTo`: the last migration to apply (all when nil); the tests use it to
    /// make a database as an older release left it.
    init(path: String, migratingUpTo lastMigration: String?) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        configuration.busyMode = .timeout(5)
        self.database = try DatabasePool(path: path, configuration: configuration)
        if let lastMigration {
            try Self.migrator.migrate(self.database, upTo: lastMigration)
        } else {
            try Self.migrator.migrate(self.database)
        }
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
        // Indexes only, so foreign keys stay enforced while it runs: the default (deferred)
        // ends a migration with `PRAGMA foreign_key_check` over every row, which on a large
        // history is exactly the O(history) start this migration exists to remove.
        migrator.registerMigration("v4: indexes for a long history", foreignKeyChecks: .immediate) { db in
            try db.execute(
                sql: """
                    -- `GET /v1/jobs`: the newest jobs, read backwards through the index and
                    -- stopped at the limit instead of sorting the whole table.
                    CREATE INDEX jobs_by_creation ON jobs(created_at, position);
                    -- `GET /v1/jobs?state=...` and the reload at start: each state's jobs
                    -- already in creation order, merged without a sort (see `jobs(states:)`).
                    CREATE INDEX jobs_by_state_creation ON jobs(state, created_at, position);
                    -- A prefix of the one above.
                    DROP INDEX jobs_by_state;
                    """)
        }
        // Who may do what (issue 12). One migration for the whole room set, so the tables
        // that refer to each other arrive together; every token is stored as its SHA-256
        // only, every secret as AES-GCM ciphertext only.
        migrator.registerMigration("v5: identities, tokens, secrets, audit, enrollments", foreignKeyChecks: .immediate) { db in
            try db.execute(
                sql: """
                    -- People and service accounts. `roles`: JSON [{"role": "developer",
                    -- "scope": "*", "environments": ["production"]}].
                    CREATE TABLE identities (
                        name TEXT PRIMARY KEY NOT NULL,
                        kind TEXT NOT NULL,
                        roles TEXT NOT NULL,
                        created_at DATETIME NOT NULL,
                        created_by TEXT,
                        disabled_at DATETIME
                    );
                    -- API tokens: `hash` is SHA-256 of the token; the token itself is shown
                    -- once and never stored.
                    CREATE TABLE api_tokens (
                        id TEXT PRIMARY KEY NOT NULL,
                        identity TEXT NOT NULL REFERENCES identities(name),
                        hash BLOB NOT NULL UNIQUE,
                        description TEXT NOT NULL,
                        created_at DATETIME NOT NULL,
                        expires_at DATETIME,
                        revoked_at DATETIME,
                        last_used_at DATETIME
                    );
                    CREATE INDEX api_tokens_by_identity ON api_tokens(identity);
                    -- Secrets: AES-GCM sealed boxes (nonce + ciphertext + tag) under the key
                    -- `key_id` names. `scope`: "pipeline", "repository:URL" or
                    -- "environment:NAME".
                    CREATE TABLE secrets (
                        name TEXT NOT NULL,
                        scope TEXT NOT NULL,
                        sealed BLOB NOT NULL,
                        key_id TEXT NOT NULL,
                        created_at DATETIME NOT NULL,
                        updated_at DATETIME NOT NULL,
                        updated_by TEXT NOT NULL,
                        PRIMARY KEY (name, scope)
                    ) WITHOUT ROWID;
                    -- The audit log: append-only, each record's `hash` is SHA-256 over the
                    -- previous record's hash and this record's canonical bytes.
                    CREATE TABLE audit_log (
                        seq INTEGER PRIMARY KEY NOT NULL,
                        at DATETIME NOT NULL,
                        actor TEXT NOT NULL,
                        token_id TEXT,
                        address TEXT,
                        action TEXT NOT NULL,
                        object TEXT NOT NULL,
                        outcome TEXT NOT NULL,
                        detail TEXT NOT NULL,
                        prev_hash BLOB NOT NULL,
                        hash BLOB NOT NULL
                    );
                    CREATE INDEX audit_by_actor ON audit_log(actor, seq);
                    CREATE INDEX audit_by_object ON audit_log(object, seq);
                    -- Join tokens: `labels` is the JSON list of label patterns agents enrolled
                    -- with it may claim; `uses_left` NULL = unlimited.
                    CREATE TABLE join_tokens (
                        id TEXT PRIMARY KEY NOT NULL,
                        hash BLOB NOT NULL UNIQUE,
                        labels TEXT NOT NULL,
                        description TEXT NOT NULL,
                        created_at DATETIME NOT NULL,
                        expires_at DATETIME,
                        uses_left INTEGER,
                        revoked_at DATETIME
                    );
                    -- One row per certificate issued to an agent host (enrollment or renewal),
                    -- carrying the labels it may claim; `serial` is the certificate's, hex.
                    CREATE TABLE enrollments (
                        serial TEXT PRIMARY KEY NOT NULL,
                        host TEXT NOT NULL,
                        labels TEXT NOT NULL,
                        join_token_id TEXT,
                        issued_at DATETIME NOT NULL,
                        not_after DATETIME NOT NULL,
                        renewed_from TEXT,
                        revoked_at DATETIME
                    );
                    CREATE INDEX enrollments_by_host ON enrollments(host);
                    -- Hosts whose certificates were revoked by `agents forget`: every
                    -- certificate for the name issued before `at` is refused, also one
                    -- issued before enrollments were recorded.
                    CREATE TABLE revoked_hosts (
                        host TEXT PRIMARY KEY NOT NULL,
                        at DATETIME NOT NULL,
                        by TEXT NOT NULL
                    );
                    -- A step's secret names and its environment (`secrets:`, `environment:`).
                    ALTER TABLE jobs ADD COLUMN secrets TEXT NOT NULL DEFAULT '[]';
                    ALTER TABLE jobs ADD COLUMN environment TEXT;
                    """)
        }
        migrator.registerMigration("v6: join tokens bound to a host") { db in
            // `host`: the one agent name the token may enroll (NULL: any name that is
            // neither enrolled nor forgotten). Only a bound token can enroll a name that
            // has a live certificate or was forgotten, so a token for one host cannot be
            // used to take over another's name.
            try db.execute(sql: "ALTER TABLE join_tokens ADD COLUMN host TEXT")
        }
        migrator.registerMigration("v7: the pipeline language") { db in
            // Defaults stand for "not used", so rows of older pipelines read as they ran:
            // run on success, no soft failures, priority 0, no concurrency group. A
            // `queue_sequence` of 0 sorts before every new job, which is where a job queued
            // before the upgrade belongs. `outcome` NULL is derived from the state.
            try db.execute(
                sql: """
                    ALTER TABLE jobs ADD COLUMN run_when TEXT NOT NULL DEFAULT 'on_success';
                    ALTER TABLE jobs ADD COLUMN soft_fail TEXT;
                    ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN queue_sequence INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN concurrency_group TEXT;
                    ALTER TABLE jobs ADD COLUMN concurrency_limit INTEGER NOT NULL DEFAULT 1;
                    ALTER TABLE jobs ADD COLUMN cancel_in_progress BOOLEAN NOT NULL DEFAULT 0;
                    ALTER TABLE jobs ADD COLUMN outcome TEXT;
                    ALTER TABLE jobs ADD COLUMN matrix TEXT NOT NULL DEFAULT '{}';
                    ALTER TABLE pipelines ADD COLUMN tag TEXT NOT NULL DEFAULT '';
                    ALTER TABLE pipelines ADD COLUMN message TEXT NOT NULL DEFAULT '';
                    ALTER TABLE pipelines ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
                    ALTER TABLE pipelines ADD COLUMN rebuild_of TEXT REFERENCES pipelines(id);
                    """)
        }
        migrator.registerMigration("v8: pipeline meta-data", foreignKeyChecks: .immediate) { db in
            // Outputs between steps (`gantry meta-data set|get`), see Outputs/. Bounded by
            // `MetaDataRule`; `job_id` is the job whose token set it, NULL for a user.
            try db.execute(
                sql: """
                    CREATE TABLE meta_data (
                        pipeline_id TEXT NOT NULL REFERENCES pipelines(id),
                        key TEXT NOT NULL,
                        value TEXT NOT NULL,
                        job_id TEXT,
                        updated_at DATETIME NOT NULL,
                        PRIMARY KEY (pipeline_id, key)
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v9: approval gates") { db in
            // `block`: the `block:` step a job is (JSON `BlockStep`), NULL for a job that
            // runs. Its decision is the job's state, reason and finish time, and the audit.
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN block TEXT")
        }
        migrator.registerMigration("v10: checkout and agent failures") { db in
            // `checkout`: the step's `checkout:` (JSON `CheckoutOptions`), NULL for the
            // default (check out the whole history into the work dir). `failure`: the
            // agent's own reason for failing the last attempt (`JobFinished.failure`, such
            // as `checkout_failed`), NULL when the commands decided.
            //
            // Jobs already stored were written for agents that never checked out: their
            // steps clone the source themselves (`git clone URL .` needs an empty work
            // dir), so a job queued across the upgrade, or retried after it, keeps running
            // without the agent's checkout.
            try db.execute(
                sql: """
                    ALTER TABLE jobs ADD COLUMN checkout TEXT;
                    ALTER TABLE jobs ADD COLUMN failure TEXT;
                    UPDATE jobs SET checkout = '{"enabled":false,"depth":0,"submodules":false,"path":""}';
                    """)
        }
        migrator.registerMigration("v11: pipeline uploads") { db in
            // `gantry pipeline upload` (see Lifecycle/JobLifecycle+Uploads.swift). Uploaded
            // steps are ordinary job rows; the pipeline counts its uploads (bounded) and
            // keeps who submitted it, whose deploy permission its uploaded steps need.
            // NULL: not recorded (a pipeline from before this migration), so an upload
            // into it may not deploy.
            try db.execute(
                sql: """
                    ALTER TABLE pipelines ADD COLUMN submitted_by TEXT;
                    ALTER TABLE pipelines ADD COLUMN uploads INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        migrator.registerMigration("v12: artifact and cache declarations") { db in
            // `transfers`: the step's `artifacts:`, `artifacts_when:`, `download:` and
            // `cache:` (JSON `StepTransfers`), sent in its leases; NULL for none.
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN transfers TEXT")
        }
        migrator.registerMigration("v13: artifacts and caches", foreignKeyChecks: .immediate) { db in
            try SQLiteStore.createArtifactTables(db)
        }
        migrator.registerMigration("v14: retention") { db in
            try SQLiteStore.addRetentionColumns(db)
        }
        migrator.registerMigration("v15: upload origins") { db in
            // JSON `UploadOrigin` of a job a step uploaded; NULL for a submitted job and
            // for jobs uploaded before this column (their uploader's retries re-add them).
            try db.execute(sql: "ALTER TABLE jobs ADD COLUMN upload TEXT")
        }
        migrator.registerMigration("v16: projects and webhooks", foreignKeyChecks: .immediate) { db in
            try SQLiteStore.createProjectTables(db)
        }
        migrator.registerMigration("v17: deployments") { db in
            try SQLiteStore.createDeploymentIndex(db)
        }
        migrator.registerMigration("v18: schedules", foreignKeyChecks: .immediate) { db in
            try SQLiteStore.createScheduleTables(db)
        }
        migrator.registerMigration("v19: pipeline listing") { db in
            try SQLiteStore.createPipelineListingIndexes(db)
        }
        migrator.registerMigration("v20: notifications", foreignKeyChecks: .immediate) { db in
            try SQLiteStore.createNotificationTables(db)
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
                case .appendJobs(let append):
                    try Self.apply(append, db)
                case .updateJob(let job):
                    try job.updateLifecycle(db)
                case .saveAttempt(let attempt):
                    try Self.upsert(attempt, db)
                case .setMetaData(let rows):
                    // A block's fields, committed with its approval, so the steps it
                    // releases read them. Bounded by the block's field limit, not by
                    // the API's per-pipeline key count.
                    for row in rows { try row.save(db) }
                case .notificationEvents(let events):
                    // In the state change's own transaction: an event is stored exactly
                    // when what it reports is (NotificationEvents).
                    try Self.insert(events, db)
                case .appendLog(let chunk):
                    // Prepared once per connection: a streaming step appends a chunk every
                    // 100 ms, and `execute(sql:)` compiles its SQL on every call.
                    try db.cachedStatement(sql: Self.insertChunkSQL).execute(
                        arguments: [chunk.jobID, chunk.attempt, chunk.offset, chunk.rawLength, chunk.data])
                    try db.cachedStatement(sql: Self.moveLogLengthSQL).execute(
                        arguments: [chunk.offset + chunk.rawLength, chunk.jobID, chunk.attempt])
                }
            }
        }
    }

    public static let insertChunkSQL =
        #"INSERT INTO log_chunks (job_id, attempt, "offset", raw_length, data) VALUES (?, ?, ?, ?, ?)"#
    /// Only if the chunk is of the job's current attempt (the primary key, then one column).
    public static let moveLogLengthSQL = "UPDATE jobs SET log_length = ? WHERE id = ? AND attempt = ?"
    /// Keeps `leased_at` of the first write: the lease time, whoever writes the attempt later.
    public static let upsertAttemptSQL = """
        INSERT INTO attempts (job_id, attempt, agent_id, state, exit_status, reason, leased_at, started_at, finished_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (job_id, attempt) DO UPDATE SET
            agent_id = excluded.agent_id, state = excluded.state, exit_status = excluded.exit_status,
            reason = excluded.reason, started_at = excluded.started_at, finished_at = excluded.finished_at
        """

    static func upsert(_ attempt: StoredAttempt, _ db: Database) throws {
        try db.cachedStatement(sql: upsertAttemptSQL).execute(arguments: StatementArguments(upsertArguments(attempt)))
    }

    /// `upsertAttemptSQL`'s parameters, in order.
    public static func upsertArguments(_ attempt: StoredAttempt) -> [DatabaseValue] {
        let values: [(any DatabaseValueConvertible)?] = [
            attempt.jobId, attempt.attempt, attempt.agentId, attempt.state, attempt.exitStatus, attempt.reason,
            attempt.leasedAt, attempt.startedAt, attempt.finishedAt,
        ]
        return values.map { $0?.databaseValue ?? .null }
    }

    // MARK: - Pipelines

    public func pipeline(id: String) throws -> StoredPipeline? {
        try database.read { db in try StoredPipeline.fetchOne(db, key: id) }
    }

    public func pipelineExists(id: String) throws -> Bool {
        try database.read { db in try StoredPipeline.exists(db, key: id) }
    }

    public func jobs(pipelineID: String) throws -> [StoredJob] {
        try database.read { db in try StoredJob.fetchAll(db, sql: Self.pipelineJobsSQL, arguments: [pipelineID]) }
    }

    /// `jobs_by_pipeline`.
    public static let pipelineJobsSQL = "SELECT * FROM jobs WHERE pipeline_id = ? ORDER BY position"

    // MARK: - Jobs

    public func job(id: String) throws -> StoredJob? {
        try database.read { db in try StoredJob.fetchOne(db, sql: Self.jobSQL, arguments: [id]) }
    }

    /// The primary key.
    public static let jobSQL = "SELECT * FROM jobs WHERE id = ?"

    public func jobs(states: [JobState]?, limit: Int) throws -> [StoredJob] {
        guard limit > 0, let query = Self.newestJobsQuery(states: states, limit: limit) else { return [] }
        return try database.read { db in
            try StoredJob.fetchAll(db, sql: query.sql, arguments: StatementArguments(query.arguments))
        }
    }

    /// Jobs that are not finished, in submission order: what the scheduler reloads at start.
    public func unfinishedJobs() throws -> [StoredJob] {
        try database.read { db in try StoredJob.fetchAll(db, sql: Self.unfinishedJobsSQL) }
    }

    /// The newest jobs, optionally in `states`, as SQL that never reads more than `limit`
    /// rows of the index and never sorts: nil when `states` is empty (no job matches).
    ///
    /// One state is a range of `jobs_by_state_creation` read backwards. Several states are a
    /// `UNION ALL` of one such range each, ordered like the index, which SQLite runs as a
    /// merge of the ranges (`MERGE (UNION ALL)`) that stops at the limit. `state IN (...)`
    /// would instead collect every job in those states and sort them (a temp B-tree):
    /// O(history) for `?state=succeeded`.
    ///
    /// `before` (a job's rowid, from a page's cursor) starts after that job: the row value
    /// `(created_at, position, rowid)` is the index's own order (rowid is every index's
    /// last column), so the range starts there instead of counting past earlier pages.
    /// The rowid breaks ties between jobs created in the same instant at the same position.
    ///
    /// PostgreSQL runs the same SQL: `rowid` is an identity column there (`PostgresSchema`).
    public static func newestJobsQuery(states: [JobState]?, limit: Int, before: Int64? = nil)
        -> (sql: String, arguments: [DatabaseValue])?
    {
        let order = "ORDER BY created_at DESC, position DESC, list_rowid DESC LIMIT ?"
        let after = before == nil
            ? "" : "(created_at, position, rowid) < (SELECT created_at, position, rowid FROM jobs WHERE rowid = ?)"
        let start: [DatabaseValue] = before.map { [$0.databaseValue] } ?? []
        guard let states else {
            return ("SELECT rowid AS list_rowid, * FROM jobs \(after.isEmpty ? "" : "WHERE " + after) \(order)", start + [limit.databaseValue])
        }
        var distinct: [JobState] = []
        for state in states where !distinct.contains(state) { distinct.append(state) }
        guard !distinct.isEmpty else { return nil }
        let range = "SELECT rowid AS list_rowid, * FROM jobs WHERE state = ?" + (after.isEmpty ? "" : " AND " + after)
        let sql = distinct.map { _ in range }.joined(separator: " UNION ALL ") + " " + order
        var arguments: [DatabaseValue] = []
        for state in distinct { arguments += [state.rawValue.databaseValue] + start }
        return (sql, arguments + [limit.databaseValue])
    }

    /// Every non-terminal state's range of `jobs_by_state_creation`, merged in submission
    /// order: reads the unfinished jobs and nothing else, however long the history. The
    /// states are literals (enum raw values) so the plan is fixed at prepare time.
    /// (`state NOT IN (terminal states)` cannot use an index: it scanned every job ever run.)
    public static let unfinishedJobsSQL =
        JobState.allCases.filter { !$0.isTerminal }
        .map { "SELECT * FROM jobs WHERE state = '\($0.rawValue)'" }
        .joined(separator: " UNION ALL ") + " ORDER BY created_at, position"

    public func attempts(jobID: String) throws -> [StoredAttempt] {
        try database.read { db in try StoredAttempt.fetchAll(db, sql: Self.attemptsSQL, arguments: [jobID]) }
    }

    /// The primary key `(job_id, attempt)`, already in order.
    public static let attemptsSQL = "SELECT * FROM attempts WHERE job_id = ? ORDER BY attempt"

    /// `EXPLAIN QUERY PLAN` of `sql`, one `detail` line per step: the tests pin which
    /// index each query uses (`StoreQueryPlanTests`).
    /// Without `arguments`, parameters stay unbound (NULL), which does not change the plan.
    func queryPlan(_ sql: String, values: [DatabaseValue]) throws -> [String] {
        try queryPlan(sql, arguments: StatementArguments(values))
    }

    func queryPlan(_ sql: String, arguments: StatementArguments? = nil) throws -> [String] {
        try database.read { db in
            let statement = try db.makeStatement(sql: "EXPLAIN QUERY PLAN " + sql)
            if let arguments {
                try statement.setArguments(arguments)
            } else {
                statement.setUncheckedArguments(StatementArguments())
            }
            return try Row.fetchAll(statement).map { $0["detail"] }
        }
    }

    // MARK: - Logs

    /// Compressed chunks of an attempt's log whose end lies beyond `from`, in order.
    public func logChunks(jobID: String, attempt: Int, from: Int, limit: Int) throws -> [LogChunkRow] {
        guard limit > 0 else { return [] }
        return try database.read { db in
            let statement = try db.cachedStatement(sql: Self.logChunksSQL)
            statement.arguments = [jobID, attempt, from, limit]
            var rows: [LogChunkRow] = []
            let cursor = try Row.fetchCursor(statement)
            while let row = try cursor.next() {
                // The blob is copied once, out of SQLite's buffer into the chunk's `Data`.
                rows.append(LogChunkRow(offset: row[0], rawLength: row[1], data: row[2]))
            }
            return rows
        }
    }

    /// Chunks from the one holding byte `from` (the last that starts at or before it) on:
    /// a seek in the primary key. Chunks are contiguous (`appendLog` is only ever at the
    /// stored length), so this is the same set as "every chunk whose end is beyond `from`",
    /// which alone made SQLite read the attempt's chunks from its first one on each page
    /// of a long log being followed.
    public static let logChunksSQL = #"""
        SELECT "offset", raw_length, data FROM log_chunks
        WHERE job_id = ?1 AND attempt = ?2 AND "offset" + raw_length > ?3
            AND "offset" >= coalesce((
                SELECT "offset" FROM log_chunks WHERE job_id = ?1 AND attempt = ?2 AND "offset" <= ?3
                ORDER BY "offset" DESC LIMIT 1), 0)
        ORDER BY "offset" LIMIT ?4
        """#
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
