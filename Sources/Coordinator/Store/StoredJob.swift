import Foundation
import GRDB
import GantryPipeline

/// One job row: a pipeline step as leased to agents, with its latest attempt's outcome.
public struct StoredJob: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "jobs"

    public var id: String
    public var pipelineId: String
    /// Position within the pipeline, for stable listings.
    public var position: Int
    public var key: String
    public var name: String
    public var state: JobState
    public var commands: [String]
    public var env: [String: String]
    public var agents: [String: String]
    public var dependsOn: [String]
    public var timeoutSeconds: Int?
    public var cancelGraceSeconds: Int
    public var retry: [RetryRule]
    /// Retries used so far, by `RetryRule.key`.
    public var retryCounts: [String: Int]
    /// Set when a user asked to cancel the job while an agent held it; the agent is told,
    /// and the job ends `cancelled` however that attempt ends.
    public var cancelReason: String?
    /// Attempt number of the current (or last) lease; 0 before the first lease.
    public var attempt: Int
    public var agentId: String?
    public var exitStatus: Int?
    public var reason: String?
    public var createdAt: Date
    public var queuedAt: Date?
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Raw bytes of the current attempt's log stored so far.
    public var logLength: Int
    /// Names of the secrets the step listed (`secrets:`); their values are never stored
    /// here: the vault adds them to the lease as it is sent.
    public var secrets: [String] = []
    /// The deployment environment of the step (`environment:`), sent in its lease and
    /// used to pick `environment:NAME` secrets.
    public var environment: String?

    // MARK: The pipeline language (schema v7)

    /// `when:`: which outcomes of its dependencies the job runs after.
    public var when: RunWhen = .onSuccess
    /// `soft_fail:`: failures that leave the job's outcome `passed`.
    public var softFail: SoftFail = .never
    /// `priority:`: higher is leased first.
    public var priority: Int = 0
    /// When the job first became runnable, as a coordinator-wide counter (0: not yet).
    /// It orders the queue among equal priorities and a concurrency group's admissions,
    /// and is stored so both orders survive a restart (the wall clock can step back).
    public var sequence: Int = 0
    /// `concurrency:` with its group resolved for this job.
    public var concurrency: ConcurrencyRule?
    /// What the job's end means for its pipeline and its dependents; nil until terminal.
    public var outcome: JobOutcome?
    /// The job's matrix values by dimension; empty for a step without `matrix:`.
    public var matrix: [String: String] = [:]
    /// `block:`: the approval gate this job is (schema v9); nil for a job that runs.
    public var block: BlockStep?
    /// `artifacts:`, `artifacts_when:`, `download:` and `cache:` (schema v13), sent in
    /// every lease of the job; empty for none.
    public var transfers = StepTransfers()

    // MARK: Checkout and the agent's failures (schema v10)

    /// `checkout:` of the step; nil stands for the default (check out, full history, into
    /// the work dir), which is what a row written before the column existed means.
    public var checkout: CheckoutOptions?
    /// Why the agent failed the current (or last) attempt on its own, apart from the
    /// commands' exit status (`JobFinished.failure`, a `JobFailureCode`): nil when the
    /// commands decided, or for a job no agent finished.
    public var failure: String?

    // MARK: Pipeline uploads (schema v15)

    /// For a job `gantry pipeline upload` added: which attempt of which job uploaded it,
    /// and the digest of what it uploaded, so a retried uploader's identical upload adds
    /// nothing a second time (`UploadOrigin`). Nil for a submitted job.
    public var upload: UploadOrigin?

    public var isTerminal: Bool { state.isTerminal }

    /// A failed or timed-out job whose failure `soft_fail` covers.
    public var softFailed: Bool { (state == .failed || state == .timedOut) && outcome == .passed }

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

/// One pipeline row.
public struct StoredPipeline: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "pipelines"

    public var id: String
    public var file: String
    public var yaml: String
    public var repository: String
    public var commit: String
    public var branch: String
    public var env: [String: String]
    public var createdAt: Date
    /// The tag built, if any (`if: tag =~ /^v/`); empty for a branch build.
    public var tag: String = ""
    /// The commit message, for `if:` conditions and listings.
    public var message: String = ""
    /// How the build started: `api` (later `webhook`, `schedule`); a rebuild keeps its
    /// original's, and is marked by `rebuildOf`.
    public var source: String = "api"
    /// The pipeline this one rebuilds (`gantry rebuild`), if any.
    public var rebuildOf: String?
    /// The identity that submitted (or rebuilt) it, schema v12; nil when not recorded.
    /// Steps uploaded into the pipeline act for it (`gantry pipeline upload`).
    public var submittedBy: String?
    /// How many files its steps have uploaded into it (bounded, schema v12).
    public var uploads: Int = 0
    /// The pipeline whose artifacts this one promotes (`--from-pipeline`,
    /// `artifacts_from:`): its steps download those digests, see Artifacts/.
    public var artifactsFrom: String?

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

extension StoredPipeline {
    /// The row's columns. Those of schema v7 (`tag`, `message`, `source`, `rebuild_of`)
    /// are written only when they differ from the columns' defaults, so a pipeline that
    /// uses none of them is the row an older database holds.
    public func encode(to container: inout PersistenceContainer) throws {
        container["id"] = id
        container["file"] = file
        container["yaml"] = yaml
        container["repository"] = repository
        container["commit"] = commit
        container["branch"] = branch
        container["env"] = String(decoding: try Self.databaseJSONEncoder(for: "env").encode(env), as: UTF8.self)
        container["created_at"] = createdAt
        if !tag.isEmpty { container["tag"] = tag }
        if !message.isEmpty { container["message"] = message }
        if source != "api" { container["source"] = source }
        if let rebuildOf { container["rebuild_of"] = rebuildOf }
        if let submittedBy { container["submitted_by"] = submittedBy }
        if uploads != 0 { container["uploads"] = uploads }
        if let artifactsFrom { container["artifacts_from"] = artifactsFrom }
    }
}

/// One lease of a job: the history behind `jobs.attempt`.
public struct StoredAttempt: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "attempts"

    public var jobId: String
    public var attempt: Int
    public var agentId: String
    public var state: AttemptState
    public var exitStatus: Int?
    public var reason: String?
    public var leasedAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

/// Where a job is in its lifecycle (docs/architecture.md). Only `JobLifecycle` changes it;
/// the raw values are what the store and the API carry.
public enum JobState: String, Sendable, CaseIterable, Codable, DatabaseValueConvertible {
    case waiting, queued, leased, running, succeeded, failed, cancelled
    case timedOut = "timed_out"
    case lost
    /// Never ran: its `if:` was false, its `when:` did not match how its dependencies
    /// ended, or a dependency failed. `outcome` says which way it counts.
    case skipped
    /// A `block:` step waiting for someone to approve or reject it; no agent holds it.
    case blocked

    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled, .timedOut, .skipped: return true
        case .waiting, .queued, .leased, .running, .lost, .blocked: return false
        }
    }

    /// An agent holds the job: it has a current attempt.
    public var isHeld: Bool { self == .leased || self == .running }
}

/// How one attempt (one lease of a job to an agent) went.
public enum AttemptState: String, Sendable, CaseIterable, Codable, DatabaseValueConvertible {
    case leased, running, succeeded, failed, cancelled
    case timedOut = "timed_out"
    /// The agent vanished (or restarted) while it held the attempt.
    case lost
    /// The agent declined the lease (`LeaseAck.accepted = false`); the job was re-queued.
    case refused

    /// The attempt that ends with the job in `state`.
    public init(ending state: JobState) {
        switch state {
        case .succeeded: self = .succeeded
        case .cancelled: self = .cancelled
        case .timedOut: self = .timedOut
        case .lost: self = .lost
        case .leased: self = .leased
        case .running: self = .running
        case .failed, .waiting, .queued, .skipped, .blocked: self = .failed
        }
    }
}

/// What a terminal job means for its pipeline and for the jobs that depend on it
/// (docs/pipeline.md, "Failure handling"). Kept apart from `JobState` because the two
/// differ: a soft-failed job is `failed` but `passed`; a job skipped because a dependency
/// failed is `skipped` but `failed`.
public enum JobOutcome: String, Sendable, CaseIterable, Codable, DatabaseValueConvertible {
    case passed, failed, cancelled

    /// The worse of two: failed over cancelled over passed. A step's outcome is the worst
    /// of its jobs', a job's dependencies' the worst of theirs.
    public func combined(with other: JobOutcome) -> JobOutcome {
        if self == .failed || other == .failed { return .failed }
        if self == .cancelled || other == .cancelled { return .cancelled }
        return .passed
    }

    /// The outcome of a row written before schema v7 (or of any terminal job whose
    /// outcome was not recorded): a job cancelled because a dependency failed was stored
    /// as `cancelled` then, and reads as such.
    public init(state: JobState) {
        switch state {
        case .succeeded, .skipped: self = .passed
        case .cancelled: self = .cancelled
        case .failed, .timedOut, .lost, .waiting, .queued, .leased, .running, .blocked: self = .failed
        }
    }
}

extension StoredJob {
    /// The columns a job's lifecycle changes after it is inserted; the step's definition
    /// (commands, env, selector, dependencies, retry rules) never changes.
    public static let lifecycleUpdate = """
        UPDATE jobs SET state = ?, retry_counts = ?, cancel_reason = ?, attempt = ?, agent_id = ?,
            exit_status = ?, reason = ?, queued_at = ?, started_at = ?, finished_at = ?, log_length = ?,
            queue_sequence = ?, outcome = ?, failure = ?
        WHERE id = ?
        """

    /// Saves the lifecycle columns with one prepared statement.
    ///
    /// Every job event (leased, running, finished, and each dependent it unblocks) is one
    /// update, and GRDB's `Codable` path re-encoded the whole row for it, JSON columns and
    /// snake-case column names included: a fifth of the coordinator's CPU on trivial jobs
    /// (Benchmarks/PROFILE.md). Throws `RecordError.recordNotFound` like `update(_:)`.
    func updateLifecycle(_ db: Database) throws {
        let statement = try db.cachedStatement(sql: Self.lifecycleUpdate)
        try statement.execute(arguments: StatementArguments(try lifecycleArguments()))
        if db.changesCount == 0 {
            throw RecordError.recordNotFound(databaseTableName: Self.databaseTableName, key: ["id": id.databaseValue])
        }
    }
}

extension StoredJob {
    /// `lifecycleUpdate`'s parameters, in order; every back end binds the same values.
    public func lifecycleArguments() throws -> [DatabaseValue] {
        let retryCounts = try retryCounts.isEmpty ? "{}" : String(decoding: JSONEncoder().encode(retryCounts), as: UTF8.self)
        let values: [(any DatabaseValueConvertible)?] = [
            state, retryCounts, cancelReason, attempt, agentId, exitStatus, reason, queuedAt, startedAt,
            finishedAt, logLength, sequence, outcome, failure, id,
        ]
        return values.map { $0?.databaseValue ?? .null }
    }
}

// MARK: - Writing rows

extension StoredJob {
    /// The row's columns, written out rather than through GRDB's `Encodable` path.
    ///
    /// The step's `secrets` and `environment` columns (schema v5) are written only when
    /// the step has them, so a job without them is the same row a v4 database holds, and the
    /// columns' defaults (`'[]'`, NULL) stand for "none". JSON columns use GRDB's own
    /// encoder, as the `Encodable` path did, so stored text is unchanged.
    public func encode(to container: inout PersistenceContainer) throws {
        func json<Value: Encodable>(_ value: Value, _ column: String) throws -> String {
            String(decoding: try Self.databaseJSONEncoder(for: column).encode(value), as: UTF8.self)
        }
        container["id"] = id
        container["pipeline_id"] = pipelineId
        container["position"] = position
        container["key"] = key
        container["name"] = name
        container["state"] = state
        container["commands"] = try json(commands, "commands")
        container["env"] = try json(env, "env")
        container["agents"] = try json(agents, "agents")
        container["depends_on"] = try json(dependsOn, "depends_on")
        container["timeout_seconds"] = timeoutSeconds
        container["cancel_grace_seconds"] = cancelGraceSeconds
        container["retry"] = try json(retry, "retry")
        container["retry_counts"] = try json(retryCounts, "retry_counts")
        container["cancel_reason"] = cancelReason
        container["attempt"] = attempt
        container["agent_id"] = agentId
        container["exit_status"] = exitStatus
        container["reason"] = reason
        container["created_at"] = createdAt
        container["queued_at"] = queuedAt
        container["started_at"] = startedAt
        container["finished_at"] = finishedAt
        container["log_length"] = logLength
        if !secrets.isEmpty { container["secrets"] = try json(secrets, "secrets") }
        if let environment { container["environment"] = environment }
        // Schema v7: written only when they differ from the columns' defaults, as above.
        if when != .onSuccess { container["run_when"] = when.rawValue }
        if let softFail = softFail.storedText { container["soft_fail"] = softFail }
        if priority != 0 { container["priority"] = priority }
        if sequence != 0 { container["queue_sequence"] = sequence }
        if let concurrency {
            container["concurrency_group"] = concurrency.group
            container["concurrency_limit"] = concurrency.limit
            container["cancel_in_progress"] = concurrency.cancelInProgress
        }
        if let outcome { container["outcome"] = outcome }
        if !matrix.isEmpty { container["matrix"] = try json(matrix, "matrix") }
        if let block { container["block"] = try json(block, "block") }
        // Schema v10: NULL is the default checkout, and no failure.
        if let checkout, checkout != .default { container["checkout"] = try json(checkout, "checkout") }
        if let failure { container["failure"] = failure }
        if !transfers.isEmpty { container["transfers"] = try json(transfers, "transfers") }
        if let upload { container["upload"] = try json(upload, "upload") }
    }
}

// MARK: - Reading rows

extension StoredJob {
    /// Reads a job row by column name, without GRDB's `Decodable` path.
    ///
    /// That path maps every property to its column through the snake-case strategy on
    /// every row, and the listing of 50 jobs spent about 60 % of the coordinator's CPU in
    /// it (a fifth in the key conversion alone, a fifth in JSON), profiled on
    /// `GET /v1/jobs?limit=50`. The JSON columns are decoded here as there, skipping the
    /// decoder for the empty `[]` and `{}` most rows hold.
    public init(row: Row) throws {
        let json = JSONColumns(row: row)
        id = try row.decode(forColumn: "id")
        pipelineId = try row.decode(forColumn: "pipeline_id")
        position = try row.decode(forColumn: "position")
        key = try row.decode(forColumn: "key")
        name = try row.decode(forColumn: "name")
        state = try row.decode(forColumn: "state")
        commands = try json.decode("commands", empty: [])
        env = try json.decode("env", empty: [:])
        agents = try json.decode("agents", empty: [:])
        dependsOn = try json.decode("depends_on", empty: [])
        timeoutSeconds = try row.decode(forColumn: "timeout_seconds")
        cancelGraceSeconds = try row.decode(forColumn: "cancel_grace_seconds")
        retry = try json.decode("retry", empty: [])
        retryCounts = try json.decode("retry_counts", empty: [:])
        cancelReason = try row.decode(forColumn: "cancel_reason")
        attempt = try row.decode(forColumn: "attempt")
        agentId = try row.decode(forColumn: "agent_id")
        exitStatus = try row.decode(forColumn: "exit_status")
        reason = try row.decode(forColumn: "reason")
        createdAt = try row.decode(forColumn: "created_at")
        queuedAt = try row.decode(forColumn: "queued_at")
        startedAt = try row.decode(forColumn: "started_at")
        finishedAt = try row.decode(forColumn: "finished_at")
        logLength = try row.decode(forColumn: "log_length")
        secrets = try json.decode("secrets", empty: [])
        environment = try row.decode(forColumn: "environment")
        let runWhen: String = try row.decode(forColumn: "run_when")
        when = RunWhen(rawValue: runWhen) ?? .onSuccess
        softFail = SoftFail(storedText: try row.decode(forColumn: "soft_fail"))
        priority = try row.decode(forColumn: "priority")
        sequence = try row.decode(forColumn: "queue_sequence")
        if let group: String = try row.decode(forColumn: "concurrency_group") {
            concurrency = ConcurrencyRule(
                group: group, limit: try row.decode(forColumn: "concurrency_limit"),
                cancelInProgress: try row.decode(forColumn: "cancel_in_progress"))
        }
        outcome = try row.decode(forColumn: "outcome")
        matrix = try json.decode("matrix", empty: [:])
        if let text: String = try row.decode(forColumn: "block") {
            block = try JSONDecoder().decode(BlockStep.self, from: Data(text.utf8))
        }
        if let text: String = try row.decode(forColumn: "checkout") {
            checkout = try JSONDecoder().decode(CheckoutOptions.self, from: Data(text.utf8))
        }
        failure = try row.decode(forColumn: "failure")
        if let text: String = try row.decode(forColumn: "transfers") {
            transfers = try JSONDecoder().decode(StepTransfers.self, from: Data(text.utf8))
        }
        if let text: String = try row.decode(forColumn: "upload") {
            upload = try JSONDecoder().decode(UploadOrigin.self, from: Data(text.utf8))
        }
    }
}

extension StoredAttempt {
    /// Reads an attempt row by column name (see `StoredJob.init(row:)`).
    public init(row: Row) throws {
        jobId = try row.decode(forColumn: "job_id")
        attempt = try row.decode(forColumn: "attempt")
        agentId = try row.decode(forColumn: "agent_id")
        state = try row.decode(forColumn: "state")
        exitStatus = try row.decode(forColumn: "exit_status")
        reason = try row.decode(forColumn: "reason")
        leasedAt = try row.decode(forColumn: "leased_at")
        startedAt = try row.decode(forColumn: "started_at")
        finishedAt = try row.decode(forColumn: "finished_at")
    }
}

/// The JSON-encoded columns of one row, decoded straight from SQLite's buffer.
private struct JSONColumns {
    let row: Row
    let decoder = JSONDecoder()

    func decode<Element: Decodable>(_ column: String, empty: [Element]) throws -> [Element] {
        try decode(column, empty: empty, emptyText: "[]")
    }

    func decode<Value: Decodable>(_ column: String, empty: [String: Value]) throws -> [String: Value] {
        try decode(column, empty: empty, emptyText: "{}")
    }

    private func decode<T: Decodable>(_ column: String, empty: T, emptyText: StaticString) throws -> T {
        try row.withUnsafeData(named: column) { data in
            guard let data else {
                throw DecodingError.valueNotFound(
                    T.self, .init(codingPath: [], debugDescription: "column \(column) is NULL"))
            }
            let isEmpty = emptyText.withUTF8Buffer { text in data.elementsEqual(text) }
            return isEmpty ? empty : try decoder.decode(T.self, from: data)
        }
    }
}
