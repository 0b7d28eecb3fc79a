#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// JSON shapes of the coordinator's HTTP API, shared by the coordinator and the `gantry`
/// CLI so the two cannot drift. Keys are snake_case on the wire.
public enum API {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    /// `POST /v1/pipelines`.
    public struct SubmitPipeline: Codable, Sendable {
        /// The pipeline file's text.
        public var yaml: String
        /// The file name, used in error messages only.
        public var file: String?
        public var repository: String?
        public var commit: String?
        public var branch: String?
        public var env: [String: String]?
        /// The tag being built, if any (`if: tag =~ /^v/`).
        public var tag: String?
        /// The commit message (`if: message =~ /skip deploy/`).
        public var message: String?
        /// Promote the artifacts of this earlier pipeline (`gantry run --from-pipeline ID`):
        /// its steps download those exact digests. Wins over `artifacts_from:` in the file.
        public var fromPipeline: String?

        public init(
            yaml: String, file: String? = nil, repository: String? = nil, commit: String? = nil,
            branch: String? = nil, env: [String: String]? = nil, tag: String? = nil, message: String? = nil,
            fromPipeline: String? = nil
        ) {
            self.fromPipeline = fromPipeline
            self.yaml = yaml
            self.file = file
            self.repository = repository
            self.commit = commit
            self.branch = branch
            self.env = env
            self.tag = tag
            self.message = message
        }
    }

    public struct Pipeline: Codable, Sendable {
        public var id: String
        public var state: String
        public var createdAt: Date
        public var repository: String
        public var commit: String
        public var branch: String
        public var jobs: [Job]
        public var tag: String?
        public var message: String?
        /// How it started: `api` (later `webhook`, `schedule`). A rebuild keeps the source
        /// of the build it repeats, so `if: source == ...` decides the same way; it is
        /// marked by `rebuildOf`.
        public var source: String?
        /// The pipeline this one rebuilds (`gantry rebuild`).
        public var rebuildOf: String?
        /// The pipeline whose artifacts this one promotes (`--from-pipeline`, `artifacts_from:`).
        public var artifactsFrom: String?
        /// `gantry keep`: retention never removes its logs or artifacts, nor those of the
        /// pipeline it promotes. Nil when not kept.
        public var kept: Bool?

        public init(
            id: String, state: String, createdAt: Date, repository: String, commit: String, branch: String, jobs: [Job],
            tag: String? = nil, message: String? = nil, source: String? = nil, rebuildOf: String? = nil
        ) {
            self.id = id
            self.state = state
            self.createdAt = createdAt
            self.repository = repository
            self.commit = commit
            self.branch = branch
            self.jobs = jobs
            self.tag = tag
            self.message = message
            self.source = source
            self.rebuildOf = rebuildOf
        }
    }

    public struct Job: Codable, Sendable {
        public var id: String
        public var pipelineId: String
        public var key: String
        public var name: String
        public var state: String
        public var attempt: Int
        public var agentId: String?
        public var exitStatus: Int?
        public var reason: String?
        public var dependsOn: [String]
        public var createdAt: Date
        public var startedAt: Date?
        public var finishedAt: Date?
        public var logBytes: Int
        /// What the job's end means for the pipeline: `passed`, `failed` or `cancelled`;
        /// nil while it is unfinished.
        public var outcome: String?
        /// Failed or timed out, but `soft_fail` covers it: the pipeline does not fail.
        public var softFailed: Bool?
        public var priority: Int?
        /// The concurrency group the job holds or waits for a slot in.
        public var concurrencyGroup: String?
        /// The job's matrix values, by dimension.
        public var matrix: [String: String]?
        /// Why the agent failed the job on its own, apart from the commands' exit status
        /// (`checkout_failed`, `download_failed`, `artifact_upload_failed`); absent when
        /// the commands decided.
        public var failure: String?

        /// Succeeded, failed, cancelled, timed out or skipped: nothing will change it
        /// again (short of `gantry retry`).
        public var isTerminal: Bool { JobStateName.terminal.contains(self.state) }

        public init(id: String, pipelineId: String, key: String, name: String, state: String, attempt: Int, agentId: String?, exitStatus: Int?, reason: String?, dependsOn: [String], createdAt: Date, startedAt: Date?, finishedAt: Date?, logBytes: Int) {
            self.id = id
            self.pipelineId = pipelineId
            self.key = key
            self.name = name
            self.state = state
            self.attempt = attempt
            self.agentId = agentId
            self.exitStatus = exitStatus
            self.reason = reason
            self.dependsOn = dependsOn
            self.createdAt = createdAt
            self.startedAt = startedAt
            self.finishedAt = finishedAt
            self.logBytes = logBytes
        }
    }

    /// One lease of a job: `GET /v1/jobs/{id}/attempts`.
    public struct Attempt: Codable, Sendable {
        public var attempt: Int
        public var agentId: String
        public var state: String
        public var exitStatus: Int?
        public var reason: String?
        public var leasedAt: Date
        public var startedAt: Date?
        public var finishedAt: Date?

        public init(
            attempt: Int, agentId: String, state: String, exitStatus: Int?, reason: String?, leasedAt: Date,
            startedAt: Date?, finishedAt: Date?
        ) {
            self.attempt = attempt
            self.agentId = agentId
            self.state = state
            self.exitStatus = exitStatus
            self.reason = reason
            self.leasedAt = leasedAt
            self.startedAt = startedAt
            self.finishedAt = finishedAt
        }
    }

    public struct Agent: Codable, Sendable {
        public var id: String
        public var labels: [String: String]
        public var state: String
        public var hostname: String
        public var connected: Bool
        public var runningJobs: [String]
        public var lastSeenAt: Date?
        /// Why a connected agent takes no new jobs (say its disk is below its
        /// `--min-free-space`); absent when it takes them. Optional, so an older
        /// coordinator's answer still decodes.
        public var notReadyReason: String?

        public init(
            id: String, labels: [String: String], state: String, hostname: String, connected: Bool, runningJobs: [String],
            lastSeenAt: Date?, notReadyReason: String? = nil
        ) {
            self.id = id
            self.labels = labels
            self.state = state
            self.hostname = hostname
            self.connected = connected
            self.runningJobs = runningJobs
            self.lastSeenAt = lastSeenAt
            self.notReadyReason = notReadyReason
        }
    }

    /// `GET /v1/demand?labels=k=v,...`: what a provider of agents with these labels must
    /// cover. For scripts and dashboards; the `gantry-agent scale` daemon gets the same
    /// figures pushed over the agent protocol instead of polling this.
    public struct Demand: Codable, Sendable {
        /// The agent labels asked about, as `k=v,k=v`.
        public var labels: String
        /// Runnable jobs not leased yet whose selector these labels satisfy.
        public var queued: Int
        /// Leased or running jobs whose selector these labels satisfy.
        public var running: Int
        public var oldestQueuedWaitSeconds: Double
        /// Agents whose labels include these, by state: idle, busy, draining, disconnected.
        public var agents: [String: Int]

        public init(labels: String, queued: Int, running: Int, oldestQueuedWaitSeconds: Double, agents: [String: Int]) {
            self.labels = labels
            self.queued = queued
            self.running = running
            self.oldestQueuedWaitSeconds = oldestQueuedWaitSeconds
            self.agents = agents
        }
    }

    public struct ErrorBody: Codable, Sendable, Error, CustomStringConvertible {
        public var error: Detail

        public struct Detail: Codable, Sendable {
            public var code: String
            public var message: String
            public var file: String?
            public var line: Int?
            public var column: Int?
        }

        public init(code: String, message: String, file: String? = nil, line: Int? = nil, column: Int? = nil) {
            self.error = Detail(code: code, message: message, file: file, line: line, column: column)
        }

        public var description: String {
            var location = ""
            if let file = error.file { location += file }
            if let line = error.line { location += ":\(line)" }
            if let column = error.column { location += ":\(column)" }
            return location.isEmpty ? error.message : "\(location): \(error.message)"
        }
    }
}

/// Job state names as stored and shown. Only the coordinator changes a job's state.
public enum JobStateName {
    public static let waiting = "waiting"
    public static let queued = "queued"
    public static let leased = "leased"
    public static let running = "running"
    public static let succeeded = "succeeded"
    public static let failed = "failed"
    public static let cancelled = "cancelled"
    public static let timedOut = "timed_out"
    public static let lost = "lost"
    public static let skipped = "skipped"
    public static let blocked = "blocked"

    public static let terminal: Set<String> = [succeeded, failed, cancelled, timedOut, skipped]
}
