import ArgumentParser
import AsyncHTTPClient
import Foundation
import GantryCLIKit
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
        discussion: """
            Exit codes:
              0    success; for run, rebuild --follow, logs --follow: it succeeded
              1    the pipeline or job failed or was cancelled, or the coordinator
                   refused the request (404, 422)
              2    usage error: a wrong option or argument
              3    the coordinator is unreachable or refuses us as a whole
                   (connection refused, TLS, 401, 403, 5xx)
              130  Ctrl-C while following, without cancelling the pipeline
            """,
        version: GantryVersion.string,
        subcommands: [
            RunPipeline.self, Pipelines.self, PipelineCommand.self, Jobs.self, Logs.self, Agents.self, Cancel.self, Retry.self,
            Rebuild.self, WhoAmI.self, TokenCommand.self, IdentityCommand.self, Audit.self, Login.self, SecretCommand.self,
            MetaDataCommand.self, Approve.self, Reject.self, ArtifactCommand.self, CacheCommand.self, Keep.self,
            ProjectCommand.self, DeploymentsCommand.self, MetricsCommand.self, RollbackCommand.self, ScheduleCommand.self,
            NotificationCommand.self,
        ])

    /// ArgumentParser's own `main`, with its exit codes mapped to Gantry's (`CLIExit`):
    /// a usage error is 2 rather than EX_USAGE (64), and a `CLIError` exits with its code.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("Error: \(error.description)\n".utf8))
            Self.exit(withError: ExitCode(error.exitCode))
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data("\(fullMessage(for: error))\n".utf8))
                Self.exit(withError: ExitCode(CLIExit.usage))
            }
            Self.exit(withError: error)
        }
    }
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
        try await PipelineFollower(client: client, json: connection.json, steps: StepRequirements(yaml: yaml)).follow(pipeline)
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
        let now = Date()
        var table = Table(header: ["JOB", "NAME", "STATE", "ATTEMPT", "EXIT", "AGENT", "CREATED"])
        for job in jobs {
            // A matrix step's jobs share its key; the name tells them apart.
            let state = job.failure.map { "\(job.state)(\($0))" } ?? (job.softFailed == true ? "\(job.state)(soft)" : job.state)
            table.rows.append([
                job.id, job.name, state, String(job.attempt), job.exitStatus.map(String.init) ?? "-", job.agentId ?? "-",
                RelativeTime.ago(job.createdAt, now: now),
            ])
        }
        for line in table.lines() { print(line) }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a job's log.",
        discussion: """
            With --follow it streams until the job ends, through restarts of the coordinator (it reconnects \
            with a backoff and resumes at the next byte it has not printed), and exits 0 if the job succeeded, \
            1 if it did not.
            """)
    @Argument(help: "Job id.") var job: String
    @Flag(help: "Keep streaming new output until the job ends.") var follow = false
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        guard follow else {
            try await client.stream(APIRoute.jobLog.path(["id": job])) { bytes in
                FileHandle.standardOutput.write(Data(bytes))
            }
            return
        }
        let events = LogFollower.Events(
            bytes: { FileHandle.standardOutput.write(Data($0)) },
            attempt: { previous, current, reason in
                FileHandle.standardOutput.write(
                    Data("\n--- gantry: attempt \(current) (previous attempt \(previous) ended: \(TerminalText.printable(reason ?? "lost", limit: 200))) ---\n".utf8))
            },
            connection: { lost, detail in
                FileHandle.standardError.write(
                    Data((lost ? "gantry: lost the log (\(detail)); reconnecting\n" : "gantry: following again\n").utf8))
            })
        let ended = try await LogFollower(client: client, jobID: job).follow(events)
        guard ended.state == "succeeded" || ended.softFailed == true || ended.state == "skipped" else {
            FileHandle.standardError.write(Data("gantry: job \(TerminalText.printable(ended.id, limit: 80)) \(TerminalText.printable(ended.state, limit: 20))\n".utf8))
            throw ExitCode(CLIExit.failed)
        }
    }
}

struct AgentList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List agents and their state.")
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let agents: [API.Agent] = try await client.sendAllPages(APIRoute.listAgents.path)
        if connection.json {
            print(String(decoding: try API.encoder.encode(agents), as: UTF8.self))
            return
        }
        let now = Date()
        var table = Table(header: ["AGENT", "STATE", "LABELS", "LAST SEEN"])
        var reasons: [String: String] = [:]
        for agent in agents {
            table.rows.append([agent.id, agent.state, LabelSet.format(agent.labels), agent.lastSeenAt.map { RelativeTime.ago($0, now: now) } ?? "-"])
            if let reason = agent.notReadyReason, !reason.isEmpty { reasons[agent.id] = reason }
        }
        for (index, line) in table.lines().enumerated() {
            print(line)
            // The agent's own words, kept to one line of printable text.
            if index > 0, let reason = reasons[agents[index - 1].id] {
                print("  not ready: \(TerminalText.printable(reason, limit: 300))")
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

/// A runtime failure: printed as `Error: ...` without the usage text.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    /// The API's error code (`not_found`, `not_set`, …) when the coordinator refused.
    var code: String?
    /// How the process exits for it (`CLIExit`): 3 for an unreachable or refusing server.
    var exitCode: Int32
    /// The HTTP status when the coordinator answered.
    var status: Int?
    init(_ description: String, code: String? = nil, exitCode: Int32 = CLIExit.failed, status: Int? = nil) {
        self.description = description
        self.code = code
        self.exitCode = exitCode
        self.status = status
    }

    /// No answer at all, or a refusal of us as a whole: worth trying again while following.
    var isUnreachable: Bool { exitCode == CLIExit.unreachable }
}
