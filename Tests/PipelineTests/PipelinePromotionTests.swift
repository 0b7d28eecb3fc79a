@testable import GantryPipeline
import Testing

/// `artifacts_from: ID` at the top level: a pipeline id, nothing else.
@Suite("Pipeline promotion", .timeLimit(.minutes(1)))
struct PipelinePromotionTests {
    let parser = PipelineParser(file: "deploy.yml")

    @Test func namesThePipelineWhoseArtifactsItPromotes() throws {
        let id = "2f7c1e0a-93b4-4c55-a1d2-0123456789ab"
        let definition = try parser.parse("artifacts_from: \(id)\nsteps:\n  - command: ./deploy.sh\n")
        #expect(definition.artifactsFrom == id)
        #expect(try parser.parse("steps:\n  - command: x\n").artifactsFrom == nil)
    }

    @Test(arguments: ["", "'../etc'", "a b", "[x]", "{a: b}", String(repeating: "a", count: 129)])
    func refusesAnythingButAnID(_ value: String) {
        do {
            _ = try parser.parse("artifacts_from: \(value)\nsteps:\n  - command: x\n")
            Issue.record("accepted artifacts_from: \(value)")
        } catch {
            #expect(error.line == 1 && error.message.contains("artifacts_from"), "\(error)")
        }
    }

    static let deploy = """
        steps:
          - key: deploy
            environment: staging
            download: [{step: build, path: "dist/*"}]
            command: ./deploy.sh
        """

    /// A deploy file promotes the build of another pipeline: its `download:` names a step
    /// of that pipeline, which the coordinator (not the parser) checks.
    @Test func aPromotingFileDownloadsFromTheSourcesSteps() throws {
        #expect(throws: PipelineError.self) { try parser.parse(Self.deploy) }
        let promoted = try PipelineParser(file: "deploy.yml", promotes: true).parse(Self.deploy)
        #expect(promoted.foreignDownloadSteps() == ["build"])
        let id = "2f7c1e0a-93b4-4c55-a1d2-0123456789ab"
        let declared = try parser.parse("artifacts_from: \(id)\n" + Self.deploy)
        #expect(declared.foreignDownloadSteps() == ["build"] && declared.artifactsFrom == id)
        // Its own steps are not foreign, and a step still may not download its own.
        let own = try PipelineParser(promotes: true).parse(
            "steps:\n  - key: build\n    command: x\n  - key: t\n    depends_on: build\n    download: [{step: build, path: a}]\n    command: y\n")
        #expect(own.foreignDownloadSteps().isEmpty)
        #expect(throws: PipelineError.self) {
            try PipelineParser(promotes: true).parse("steps:\n  - key: a\n    download: [{step: a, path: x}]\n    command: y\n")
        }
    }
}
