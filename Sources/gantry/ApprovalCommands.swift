import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry approve PIPELINE [--step KEY] [--field key=value ...] [--reason TEXT]`.
struct Approve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Approve a block step waiting in a pipeline: its fields become meta-data and the steps after it run.")
    @Argument(help: "Pipeline id.") var pipeline: String
    @Option(help: "The block's step key (needed when several wait).") var step: String?
    @Option(name: .customLong("field"), help: "A value for one of the block's fields, key=value (repeatable).") var fields: [String] = []
    @Option(help: "Why, recorded with the decision.") var reason: String?
    @OptionGroup var connection: Connection

    func run() async throws {
        var values: [String: String] = [:]
        for pair in fields {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--field must be key=value, got '\(pair)'") }
            values[String(parts[0])] = String(parts[1])
        }
        try await BlockDecider(connection: connection).decide(
            .approvePipeline, pipeline: pipeline, API.BlockDecision(step: step, fields: values, reason: reason))
    }
}

/// `gantry reject PIPELINE [--step KEY] --reason TEXT`.
struct Reject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reject a block step waiting in a pipeline: it fails, and so does the pipeline (on_failure steps run).")
    @Argument(help: "Pipeline id.") var pipeline: String
    @Option(help: "The block's step key (needed when several wait).") var step: String?
    @Option(help: "Why, recorded with the decision.") var reason: String
    @OptionGroup var connection: Connection

    func run() async throws {
        try await BlockDecider(connection: connection).decide(
            .rejectPipeline, pipeline: pipeline, API.BlockDecision(step: step, reason: reason))
    }
}

/// Sends one decision and prints how the block ended.
struct BlockDecider {
    let connection: Connection

    func decide(_ route: APIRoute, pipeline: String, _ decision: API.BlockDecision) async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let job: API.Job = try await client.send(route.method, route.path(["id": pipeline]), body: decision)
        print(
            connection.json
                ? String(decoding: try API.encoder.encode(job), as: UTF8.self)
                : "block \(job.key) of pipeline \(job.pipelineId): \(job.state) (\(job.reason ?? ""))")
    }
}
