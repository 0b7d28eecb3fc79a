import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry keep PIPELINE`: retention never removes the pipeline's logs and artifacts, nor
/// those of the pipeline it promotes; `--remove` lets them go again.
struct Keep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keep a pipeline's logs and artifacts past the coordinator's retention (a release); --remove lets them go again.")
    @Argument(help: "Pipeline id.") var pipeline: String
    @Flag(help: "Stop keeping the pipeline: retention may remove its logs and artifacts once they are old enough.")
    var remove = false
    @OptionGroup var connection: Connection

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        let route = remove ? APIRoute.unkeepPipeline : .keepPipeline
        let answer: API.Pipeline = try await client.send(route.method, route.path(["id": pipeline]), body: Optional<API.SubmitPipeline>.none)
        print(
            connection.json
                ? String(decoding: try API.encoder.encode(answer), as: UTF8.self)
                : "pipeline \(answer.id): \(answer.kept == true ? "kept" : "not kept")")
    }
}
