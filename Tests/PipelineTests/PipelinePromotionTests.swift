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
}
