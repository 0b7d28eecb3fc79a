import Foundation
import GRDB
import GantryCoordinator
import GantryProtocol
import NIOCore
import NIOFoundationCompat

/// Fills a coordinator database with finished history, fast: prepared inserts in large
/// transactions, straight into the tables (the store's API commits per lifecycle turn,
/// minutes for a million jobs).
///
/// The schema is the coordinator's own: `SQLiteStore` creates and migrates the file first,
/// and the inserts name their columns, so a schema change the seeder does not know about
/// fails loudly here rather than measuring something else. The rows are what the
/// coordinator writes for a finished pipeline: 10 jobs (the first a dependency of the
/// others), one attempt each (a lost one before it for 2 % of them), one deflated log
/// chunk per job's last attempt; mostly succeeded, some failed, cancelled and timed out.
/// Ids are UUID-shaped and deterministic (`jobID(_:)`), so the benchmark can ask for any
/// job; job `n` of the history is the `n`-th oldest.
final class HistorySeeder {
    static let jobsPerPipeline = 10
    /// A pipeline every 20 s, ending about now at 100,000 pipelines (10^6 jobs).
    static let spacing: Int64 = 20_000
    static let firstCreated: Int64 = Int64(Date().timeIntervalSince1970 * 1000) - 100_000 * spacing

    let path: String
    private(set) var jobs = 0
    var pipelines: Int { jobs / Self.jobsPerPipeline }
    private let chunk: (raw: Int, data: Data)

    init(path: String) throws {
        self.path = path
        // Creates the file with the coordinator's migrations, then closes it.
        _ = try SQLiteStore(path: path)
        var text = ""
        for line in 0..<40 {
            text += "[\(String(format: "%03d", line))] compiling Sources/Module/File\(line).swift (\(line * 37 % 1000) ms)\n"
        }
        let raw = ByteBuffer(string: text)
        chunk = (raw.readableBytes, Data(buffer: try LogCompression.compress(raw)))
    }

    /// Adds whole pipelines of finished jobs, newer than those already there, until the
    /// database holds `total` jobs.
    func seed(upTo total: Int) throws {
        precondition(total % Self.jobsPerPipeline == 0 && total >= jobs)
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // A scratch database that is thrown away if this fails: no journal, no fsync,
            // a page cache big enough to hold the primary keys' random inserts.
            try db.execute(sql: "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -1048576")
        }
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        let batch = 5_000  // pipelines per transaction
        var pipeline = pipelines
        while pipeline < total / Self.jobsPerPipeline {
            let end = min(pipeline + batch, total / Self.jobsPerPipeline)
            try queue.inTransaction { db in
                for p in pipeline..<end { try insertPipeline(p, db) }
                return .commit
            }
            pipeline = end
        }
        jobs = total
        // Back to what the coordinator runs on.
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
    }

    private func insertPipeline(_ p: Int, _ db: Database) throws {
        let created = Self.firstCreated + Int64(p) * Self.spacing
        let pipelineID = Self.uuid(UInt64(p), salt: 0x5049_5045)
        let yaml = (0..<Self.jobsPerPipeline).map { position in
            "  - key: step-\(position)\n    command: make step-\(position)\n" + (position == 0 ? "" : "    depends_on: [step-0]\n")
        }.joined()
        try db.cachedStatement(
            sql: """
                INSERT INTO pipelines (id, file, yaml, repository, "commit", branch, env, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: Self.row(
            pipelineID, "ci/pipeline.yml", "steps:\n" + yaml, "https://git.example.com/app.git",
            String(format: "%016llx%016llx%08x", SplitMix.mix(UInt64(p)), SplitMix.mix(UInt64(p) &+ 1), UInt32(p)),
            p % 7 == 0 ? "release" : "main", "{}", Self.timestamp(created)))
        let insertJob = try db.cachedStatement(
            sql: """
                INSERT INTO jobs (id, pipeline_id, position, key, name, state, commands, env, agents, depends_on,
                    timeout_seconds, attempt, agent_id, exit_status, reason, created_at, queued_at, started_at,
                    finished_at, log_length, cancel_grace_seconds, retry, retry_counts, cancel_reason)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        let insertAttempt = try db.cachedStatement(
            sql: """
                INSERT INTO attempts (job_id, attempt, agent_id, state, exit_status, reason, leased_at, started_at, finished_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        let insertChunk = try db.cachedStatement(
            sql: #"INSERT INTO log_chunks (job_id, attempt, "offset", raw_length, data) VALUES (?, ?, 0, ?, ?)"#)
        for position in 0..<Self.jobsPerPipeline {
            let n = p * Self.jobsPerPipeline + position
            let id = Self.jobID(n)
            let roll = SplitMix.mix(UInt64(n) ^ 0xC0FF_EE00) % 100
            let (state, exit, reason): (String, Int?, String?) =
                switch roll {
                case 0..<4: ("failed", 1, "exit status 1")
                case 4..<6: ("cancelled", nil, "cancelled by alice")
                case 6..<7: ("timed_out", nil, "timed out after 30m")
                default: ("succeeded", 0, nil)
                }
            let retried = roll >= 98
            let attempt = retried ? 2 : 1
            let agent = "build-\(n % 50)/\(n % 4 + 1)"
            let queued = created + (position == 0 ? 0 : 60_000)
            let startedAt = queued + 150
            let finishedAt = startedAt + 30_000 + Int64(n % 9_000)
            let cancelReason: String? = state == "cancelled" ? "cancelled by alice" : nil
            try insertJob.execute(arguments: Self.row(
                id, pipelineID, position, "step-\(position)", "Step \(position)", state, "[\"make step-\(position)\"]",
                "{\"CI\":\"true\",\"GANTRY_STEP\":\"step-\(position)\"}", "{\"os\":\"linux\",\"queue\":\"default\"}",
                position == 0 ? "[]" : "[\"step-0\"]", 1800, attempt, agent, exit, reason, Self.timestamp(created),
                Self.timestamp(queued), Self.timestamp(startedAt), Self.timestamp(finishedAt), chunk.raw, 10,
                #"[{"condition":{"agentLost":{}},"limit":2}]"#, retried ? #"{"agent_lost":1}"# : "{}",
                cancelReason))
            if retried {
                try insertAttempt.execute(arguments: Self.row(
                    id, 1, "build-\((n + 1) % 50)/1", "lost", nil, "agent lost", Self.timestamp(queued),
                    Self.timestamp(startedAt - 100), nil))
            }
            try insertAttempt.execute(arguments: Self.row(
                id, attempt, agent, state, exit, reason, Self.timestamp(queued), Self.timestamp(startedAt),
                Self.timestamp(finishedAt)))
            try insertChunk.execute(arguments: Self.row(id, attempt, chunk.raw, chunk.data))
        }
    }

    /// One row's values, each checked on its own (a 24-element heterogeneous array literal
    /// is slow to type-check).
    static func row(_ values: (any DatabaseValueConvertible)?...) -> StatementArguments {
        StatementArguments(values)
    }

    /// The id of the `n`-th oldest job.
    static func jobID(_ n: Int) -> String { uuid(UInt64(n), salt: 0x4A4F_4253) }

    /// A version-4-shaped UUID string derived from `value`.
    static func uuid(_ value: UInt64, salt: UInt64) -> String {
        let high = SplitMix.mix(value ^ (salt << 32))
        let low = SplitMix.mix(high ^ value)
        let hex = String(format: "%016llx%016llx", high, low)
        let characters = Array(hex)
        return String(characters[0..<8]) + "-" + String(characters[8..<12]) + "-4" + String(characters[13..<16]) + "-8"
            + String(characters[17..<20]) + "-" + String(characters[20..<32])
    }

    /// Milliseconds since 1970 as GRDB stores a `Date`: "yyyy-MM-dd HH:mm:ss.SSS", UTC.
    static func timestamp(_ milliseconds: Int64) -> String {
        let seconds = milliseconds / 1000
        let days = seconds / 86_400
        let time = seconds % 86_400
        // Days to a civil date (H. Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return String(
            format: "%04lld-%02lld-%02lld %02lld:%02lld:%02lld.%03lld", year, month, day, time / 3600, time / 60 % 60,
            time % 60, milliseconds % 1000)
    }
}
