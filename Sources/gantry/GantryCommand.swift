import ArgumentParser
import AsyncHTTPClient
import Foundation
import GantryPipeline
import GantryProtocol
import NIOCore
import NIOHTTP1
import NIOFoundationCompat

/// `gantry`: the user's CLI for the coordinator's HTTP API.
@main
struct GantryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gantry",
        abstract: "Submit pipelines to a Gantry coordinator and follow their jobs.",
        subcommands: [
            RunPipeline.self, Jobs.self, Logs.self, Agents.self, Cancel.self, WhoAmI.self, TokenCommand.self, IdentityCommand.self,
            Audit.self, Login.self, SecretCommand.self, Retry.self, Rebuild.self, MetaDataCommand.self, Approve.self, Reject.self,
            PipelineCommand.self, ArtifactCommand.self, CacheCommand.self, Keep.self, ProjectCommand.self, DeploymentsCommand.self, MetricsCommand.self, RollbackCommand.self, ScheduleCommand.self, NotificationCommand.self,
        ])
}

struct RunPipeline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Submit a pipeline, stream every job's log, exit 0 only if the pipeline succeeded.",
        discussion: """
            Without FILE, --repository and --commit start the bootstrap pipeline: one step that uploads the
            repository's own .gantry/pipeline.yml at that commit (`gantry pipeline upload`).
            """)

    @Argument(help: "Pipeline YAML file (default: the bootstrap pipeline, with --repository and --commit).") var file: String?
    @OptionGroup var connection: Connection
    @Option(help: "Repository, exposed to steps as GANTRY_REPOSITORY.") var repository: String?
    @Option(help: "Commit, exposed as GANTRY_COMMIT.") var commit: String?
    @Option(help: "Branch, exposed as GANTRY_BRANCH.") var branch: String?
    @Option(help: "Tag being built, for `if:` conditions (`tag =~ /^v/`).") var tag: String?
    @Option(help: "Commit message, for `if:` conditions (`message =~ /skip deploy/`).") var message: String?
    @Option(name: .customLong("env"), help: "Extra environment for every step, K=V (repeatable).") var env: [String] = []
    @Option(help: "Promote the artifacts of this earlier pipeline: its steps download those exact digests (wins over `artifacts_from:`).")
    var fromPipeline: String?

    func run() async throws {
        let yaml: String
        let name: String
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw CLIError("cannot read pipeline file '\(file)'")
            }
            (yaml, name) = (text, file)
        } else {
            guard repository != nil, commit != nil else {
                throw ValidationError(
                    "pass a pipeline file, or --repository and --commit to build the repository's own "
                        + "\(PipelineBootstrap.repositoryFile)")
            }
            (yaml, name) = (PipelineBootstrap.yaml, PipelineBootstrap.file)
        }
        var variables: [String: String] = [:]
        for pair in env {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw ValidationError("--env must be K=V, got '\(pair)'") }
            variables[String(parts[0])] = String(parts[1])
        }
        let client = try connection.client()
        defer { client.shutdown() }
        let submission = API.SubmitPipeline(
            yaml: yaml, file: name, repository: repository, commit: commit, branch: branch, env: variables, tag: tag,
            message: message, fromPipeline: fromPipeline)
        let pipeline: API.Pipeline = try await client.send("POST", "/v1/pipelines", body: submission)
        if !connection.json {
            FileHandle.standardError.write(Data("gantry: pipeline \(pipeline.id) submitted with \(pipeline.jobs.count) job(s)\n".utf8))
        }
        try await PipelineFollower(client: client, json: connection.json).follow(pipeline)
    }
}

/// Streams every job's log of a pipeline, prefixed by the job's name, then prints how
/// each ended and exits non-zero unless the pipeline succeeded.
struct PipelineFollower {
    let client: APIClient
    let json: Bool

    /// How often the pipeline is read for jobs its steps uploaded while it runs.
    static let pollInterval = Duration.seconds(1)

    /// What a task of `follow` ended with.
    private enum Followed: Sendable {
        case log
        case poll(API.Pipeline?)
    }

    func follow(_ pipeline: API.Pipeline) async throws {
        let width = min(pipeline.jobs.map(\.name.count).max() ?? 0, 40)
        let printer = LinePrinter()
        let client = client
        let json = json
        try await withThrowingTaskGroup(of: Followed.self) { group in
            // Steps may add jobs while the pipeline runs (`gantry pipeline upload`): the
            // pipeline is read again every second, and each new job's log followed too.
            // At most 1,000 jobs per pipeline, so at most that many followers.
            var followed: Set<String> = []
            func followNew(_ jobs: [API.Job]) {
                for job in jobs where followed.insert(job.id).inserted {
                    group.addTask {
                        let prefix = json ? nil : "[\(job.name.padding(toLength: width, withPad: " ", startingAt: 0))] "
                        try await client.stream("/v1/jobs/\(job.id)/log?follow=1") { bytes in
                            if let prefix { await printer.write(bytes, prefix: prefix, stream: job.id) }
                        }
                        if let prefix { await printer.flush(prefix: prefix, stream: job.id) }
                        return .log
                    }
                }
            }
            func poll() {
                group.addTask {
                    try await Task.sleep(for: Self.pollInterval)
                    return .poll(try? await client.send("GET", "/v1/pipelines/\(pipeline.id)") as API.Pipeline)
                }
            }
            followNew(pipeline.jobs)
            if pipeline.state == "running" { poll() }
            // A read that fails is tried again, 30 times in a row at most: the logs being
            // followed say more about an unreachable coordinator than the poll does.
            var failedReads = 0
            while let result = try await group.next() {
                guard case .poll(let latest) = result else { continue }
                if let latest {
                    failedReads = 0
                    followNew(latest.jobs)
                    if latest.state == "running" { poll() }
                } else {
                    failedReads += 1
                    if failedReads < 30 { poll() }
                }
            }
        }
        let final: API.Pipeline = try await client.send("GET", "/v1/pipelines/\(pipeline.id)")
        if json {
            print(String(decoding: try API.encoder.encode(final), as: UTF8.self))
        } else {
            print("")
            for job in final.jobs {
                let status = job.exitStatus.map { " (exit status \($0))" } ?? ""
                let reason = job.reason.map { ": \($0)" } ?? ""
                let mark = job.state == "succeeded" ? "✓" : job.softFailed == true ? "!" : job.state == "skipped" ? "-" : "✗"
                let soft = job.softFailed == true ? " (soft fail)" : ""
                // The agent's own failure (such as `checkout_failed`) before the exit status:
                // the commands did not decide it.
                let failure = job.failure.map { " [\($0)]" } ?? ""
                print("\(mark) \(job.name) \(job.state)\(failure)\(soft)\(status)\(job.state == "succeeded" ? "" : reason)")
            }
        }
        guard final.state == "succeeded" else {
            if !json {
                let failed = final.jobs.filter { $0.outcome == "failed" || $0.outcome == "cancelled" }
                FileHandle.standardError.write(
                    Data("gantry: pipeline \(final.state): \(failed.map { "\($0.name) \($0.state)\($0.failure.map { " (\($0))" } ?? "")\($0.exitStatus.map { " with exit status \($0)" } ?? "")" }.joined(separator: ", "))\n".utf8))
            }
            throw ExitCode(1)
        }
    }
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List recent jobs.")
    @OptionGroup var connection: Connection
    @Option(help: "Only these states, comma-separated.") var state: String?
    @Option(help: "At most this many (1 to 5000).") var limit: Int = 50

    func validate() throws {
        // The API refuses a limit out of range (400) rather than clamping it.
        guard (1...5000).contains(limit) else { throw ValidationError("--limit must be 1 to 5000") }
    }

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        var path = "/v1/jobs?limit=\(limit)"
        if let state { path += "&state=\(state)" }
        let jobs: [API.Job] = try await client.send("GET", path)
        if connection.json {
            print(String(decoding: try API.encoder.encode(jobs), as: UTF8.self))
            return
        }
        print("JOB                                   NAME                         STATE         ATTEMPT  EXIT  AGENT")
        for job in jobs {
            // A matrix step's jobs share its key; the name tells them apart.
            // `failed(checkout_failed)`: the agent's own failure is longer than the column,
            // and is padded, never cut.
            let state = job.failure.map { "\(job.state)(\($0))" } ?? (job.softFailed == true ? "\(job.state)(soft)" : job.state)
            let stateColumn = state + String(repeating: " ", count: max(0, 13 - state.count))
            print(
                "\(job.id)  \(job.name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(stateColumn) \(String(job.attempt).padding(toLength: 8, withPad: " ", startingAt: 0)) \((job.exitStatus.map(String.init) ?? "-").padding(toLength: 5, withPad: " ", startingAt: 0)) \(job.agentId ?? "-")")
        }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a job's log.")
    @Argument(help: "Job id.") var job: String
    @Flag(help: "Keep streaming new output until the job ends.") var follow = false
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        try await client.stream("/v1/jobs/\(job)/log\(follow ? "?follow=1" : "")") { bytes in
            FileHandle.standardOutput.write(Data(bytes))
        }
    }
}

struct AgentList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List agents and their state.")
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let agents: [API.Agent] = try await client.send("GET", "/v1/agents")
        if connection.json {
            print(String(decoding: try API.encoder.encode(agents), as: UTF8.self))
            return
        }
        print("AGENT                          STATE         LABELS                 LAST SEEN")
        for agent in agents {
            let labels = LabelSet.format(agent.labels)
            print(
                "\(agent.id.padding(toLength: 30, withPad: " ", startingAt: 0)) \(agent.state.padding(toLength: 13, withPad: " ", startingAt: 0)) \(labels.padding(toLength: 22, withPad: " ", startingAt: 0)) \(agent.lastSeenAt.map { "\($0)" } ?? "-")")
            // The agent's own words, kept to one line of printable text.
            if let reason = agent.notReadyReason, !reason.isEmpty {
                let printable = String(reason.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(300).map(Character.init))
                print("  not ready: \(printable)")
            }
        }
    }
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel a job or every unfinished job of a pipeline (running steps get SIGTERM, then SIGKILL after their grace).")
    @Argument(help: "Job or pipeline id.") var id: String
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        do {
            let job: API.Job = try await client.send("POST", "/v1/jobs/\(id)/cancel", body: Optional<API.SubmitPipeline>.none)
            print(connection.json ? String(decoding: try API.encoder.encode(job), as: UTF8.self) : "job \(job.id) (\(job.key)): \(job.state)\(job.isTerminal ? "" : ", cancel requested")")
            return
        } catch let error as CLIError where error.description.hasPrefix("no job") {
            // Not a job id: try it as a pipeline.
        }
        let pipeline: API.Pipeline = try await client.send("POST", "/v1/pipelines/\(id)/cancel", body: Optional<API.SubmitPipeline>.none)
        if connection.json {
            print(String(decoding: try API.encoder.encode(pipeline), as: UTF8.self))
        } else {
            for job in pipeline.jobs { print("job \(job.id) (\(job.key)): \(job.state)\(job.isTerminal ? "" : ", cancel requested")") }
        }
    }
}

/// Prefixes each complete line with its step's name, so concurrent steps stay readable.
actor LinePrinter {
    private var partial: [String: [UInt8]] = [:]

    func write(_ bytes: [UInt8], prefix: String, stream: String) {
        var pending = partial[stream, default: []] + bytes
        var output: [UInt8] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            output += Array(prefix.utf8) + pending[...newline]
            pending.removeSubrange(...newline)
        }
        partial[stream] = pending
        if !output.isEmpty { FileHandle.standardOutput.write(Data(output)) }
    }

    func flush(prefix: String, stream: String) {
        if let rest = partial.removeValue(forKey: stream), !rest.isEmpty {
            FileHandle.standardOutput.write(Data(Array(prefix.utf8) + rest + [UInt8(ascii: "\n")]))
        }
    }
}

/// A runtime failure: printed as `Error: ...` without the usage text.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    /// The API's error code (`not_found`, `not_set`, …) when the coordinator refused.
    var code: String?
    init(_ description: String, code: String? = nil) {
        self.description = description
        self.code = code
    }
}
