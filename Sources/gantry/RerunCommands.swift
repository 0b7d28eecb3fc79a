import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry retry JOB`: runs a finished job again as a new attempt.
struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a finished job again as a new attempt; jobs after it that did not run because of it are decided again.")
    @Argument(help: "Job id.") var job: String
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let retried: API.Job = try await client.send(
            "POST", APIRoute.retryJob.path(["id": job]), body: Optional<API.SubmitPipeline>.none)
        print(
            connection.json
                ? String(decoding: try API.encoder.encode(retried), as: UTF8.self)
                : "job \(retried.id) (\(retried.name)): \(retried.state), attempt \(Self.attemptThatRuns(retried))")
    }

    /// The attempt the retry runs as: an idle agent may have been leased the job before
    /// the answer was written (its attempt is already counted), or the job still waits.
    static func attemptThatRuns(_ job: API.Job) -> Int {
        ["leased", "running"].contains(job.state) ? job.attempt : job.attempt + 1
    }
}

/// `gantry rebuild PIPELINE`: a new pipeline from the same file and source.
struct Rebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a new pipeline from a pipeline's file, repository, commit, branch, tag and env; it points back to the old one.")
    @Argument(help: "Pipeline id.") var pipeline: String
    @Flag(help: "Stream the new pipeline's logs and exit 0 only if it succeeds, like `gantry run`.") var follow = false
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let rebuilt: API.Pipeline = try await client.send(
            "POST", APIRoute.rebuildPipeline.path(["id": pipeline]), body: Optional<API.SubmitPipeline>.none)
        if follow {
            if !connection.json {
                FileHandle.standardError.write(
                    Data("gantry: pipeline \(rebuilt.id) rebuilds \(pipeline) with \(rebuilt.jobs.count) job(s)\n".utf8))
            }
            try await PipelineFollower(client: client, json: connection.json).follow(rebuilt)
            return
        }
        print(connection.json ? String(decoding: try API.encoder.encode(rebuilt), as: UTF8.self) : rebuilt.id)
    }
}
