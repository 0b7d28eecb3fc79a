import ArgumentParser
import AsyncHTTPClient
import Foundation
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
        subcommands: [RunPipeline.self, Jobs.self, Logs.self, Agents.self, Cancel.self, WhoAmI.self, TokenCommand.self, IdentityCommand.self, SecretCommand.self])
}

/// Options every command shares: where the API is and how to authenticate.
struct Connection: ParsableArguments {
    @Option(help: "Coordinator HTTP API URL (env GANTRY_SERVER).") var server: String?
    @Option(help: "API token (env GANTRY_TOKEN, or ~/.config/gantry/token).") var token: String?
    @Flag(help: "Machine-readable JSON output.") var json = false

    func client() throws -> APIClient {
        let environment = ProcessInfo.processInfo.environment
        let base = server ?? environment["GANTRY_SERVER"] ?? "http://127.0.0.1:7080"
        guard base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw ValidationError("--server must be an http:// or https:// URL, got '\(base)'")
        }
        var resolved = token ?? environment["GANTRY_TOKEN"]
        if resolved == nil {
            let file = (environment["HOME"] ?? "~") + "/.config/gantry/token"
            resolved = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let resolved, !resolved.isEmpty else {
            throw ValidationError(
                "no API token: pass --token, set GANTRY_TOKEN, or write it to ~/.config/gantry/token "
                    + "(the coordinator's is in STATE/admin.token)")
        }
        return APIClient(base: base.hasSuffix("/") ? String(base.dropLast()) : base, token: resolved)
    }
}

struct RunPipeline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Submit a pipeline, stream every step's log, exit 0 only if every step succeeded.")

    @Argument(help: "Pipeline YAML file.") var file: String
    @OptionGroup var connection: Connection
    @Option(help: "Repository, exposed to steps as GANTRY_REPOSITORY.") var repository: String?
    @Option(help: "Commit, exposed as GANTRY_COMMIT.") var commit: String?
    @Option(help: "Branch, exposed as GANTRY_BRANCH.") var branch: String?
    @Option(name: .customLong("env"), help: "Extra environment for every step, K=V (repeatable).") var env: [String] = []

    func run() async throws {
        guard let yaml = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw CLIError("cannot read pipeline file '\(file)'")
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
            yaml: yaml, file: file, repository: repository, commit: commit, branch: branch, env: variables)
        let pipeline: API.Pipeline = try await client.send("POST", "/v1/pipelines", body: submission)
        if !connection.json {
            FileHandle.standardError.write(Data("gantry: pipeline \(pipeline.id) submitted with \(pipeline.jobs.count) step(s)\n".utf8))
        }
        let width = pipeline.jobs.map(\.key.count).max() ?? 0
        let printer = LinePrinter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for job in pipeline.jobs {
                group.addTask {
                    let prefix = connection.json ? nil : "[\(job.key.padding(toLength: width, withPad: " ", startingAt: 0))] "
                    try await client.stream("/v1/jobs/\(job.id)/log?follow=1") { bytes in
                        if let prefix { await printer.write(bytes, prefix: prefix, stream: job.id) }
                    }
                    if let prefix { await printer.flush(prefix: prefix, stream: job.id) }
                }
            }
            try await group.waitForAll()
        }
        let final: API.Pipeline = try await client.send("GET", "/v1/pipelines/\(pipeline.id)")
        if connection.json {
            print(String(decoding: try API.encoder.encode(final), as: UTF8.self))
        } else {
            print("")
            for job in final.jobs {
                let status = job.exitStatus.map { " (exit status \($0))" } ?? ""
                let reason = job.reason.map { ": \($0)" } ?? ""
                print("\(job.state == "succeeded" ? "✓" : "✗") \(job.key) \(job.state)\(status)\(job.state == "succeeded" ? "" : reason)")
            }
        }
        let failed = final.jobs.filter { $0.state != "succeeded" }
        if !failed.isEmpty {
            if !connection.json {
                FileHandle.standardError.write(
                    Data("gantry: pipeline failed: \(failed.map { "\($0.key) \($0.state)\($0.exitStatus.map { " with exit status \($0)" } ?? "")" }.joined(separator: ", "))\n".utf8))
            }
            throw ExitCode(1)
        }
    }
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List recent jobs.")
    @OptionGroup var connection: Connection
    @Option(help: "Only these states, comma-separated.") var state: String?
    @Option(help: "At most this many.") var limit: Int = 50

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
        print("JOB                                   STEP                 STATE       ATTEMPT  EXIT  AGENT")
        for job in jobs {
            print(
                "\(job.id)  \(job.key.padding(toLength: 20, withPad: " ", startingAt: 0)) \(job.state.padding(toLength: 11, withPad: " ", startingAt: 0)) \(String(job.attempt).padding(toLength: 8, withPad: " ", startingAt: 0)) \((job.exitStatus.map(String.init) ?? "-").padding(toLength: 5, withPad: " ", startingAt: 0)) \(job.agentId ?? "-")")
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

/// A thin typed wrapper over AsyncHTTPClient for the coordinator's API.
struct APIClient: Sendable {
    let base: String
    let token: String
    let http = HTTPClient(eventLoopGroupProvider: .singleton)

    func shutdown() {
        try? http.syncShutdown()
    }

    func send<Response: Decodable>(_ method: String, _ path: String) async throws -> Response {
        try await send(method, path, body: Optional<API.SubmitPipeline>.none)
    }

    func send<Body: Encodable, Response: Decodable>(_ method: String, _ path: String, body: Body?) async throws -> Response {
        var request = HTTPClientRequest(url: base + path)
        request.method = HTTPMethod(rawValue: method)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try API.encoder.encode(body)))
        }
        let response = try await execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
        try check(response.status, bytes)
        do {
            return try API.decoder.decode(Response.self, from: Data(buffer: bytes))
        } catch {
            throw CLIError("unexpected response from \(base)\(path): \(error)")
        }
    }

    func stream(_ path: String, _ onBytes: @Sendable ([UInt8]) async -> Void) async throws {
        var request = HTTPClientRequest(url: base + path)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await execute(request, timeout: .hours(24))
        if response.status != .ok {
            try check(response.status, try await response.body.collect(upTo: 1024 * 1024))
        }
        for try await buffer in response.body {
            await onBytes(Array(buffer.readableBytesView))
        }
    }

    private func execute(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        do {
            return try await http.execute(request, timeout: timeout)
        } catch {
            throw CLIError("cannot reach the coordinator at \(base): \(error). Is `gantry-coordinator serve` running? (--server / GANTRY_SERVER)")
        }
    }

    private func check(_ status: HTTPResponseStatus, _ body: ByteBuffer) throws {
        guard (200..<300).contains(Int(status.code)) else {
            if let error = try? API.decoder.decode(API.ErrorBody.self, from: Data(buffer: body)) {
                throw CLIError("\(error)")
            }
            throw CLIError("the coordinator answered \(status.code): \(String(buffer: body))")
        }
    }
}

/// A runtime failure: printed as `Error: ...` without the usage text.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
