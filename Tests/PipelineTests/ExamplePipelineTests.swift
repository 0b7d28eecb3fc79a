import Foundation
@testable import GantryPipeline
import Testing

/// The pipelines under `examples/` that the docs walk through parse, and mean what the
/// docs say they mean.
@Suite("Example pipelines")
struct ExamplePipelineTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples")

    @Test func theDeliveryPipelineBuildsOnceTestsInParallelAndDeploysTheSameBytesThroughAGate() throws {
        let yaml = try String(contentsOf: Self.examples.appendingPathComponent("delivery/.gantry/pipeline.yml"), encoding: .utf8)
        let definition = try PipelineParser(file: ".gantry/pipeline.yml").parse(yaml)
        #expect(definition.steps.map(\.key) == ["build", "test", "staging", "approve", "production"])
        let steps = Dictionary(uniqueKeysWithValues: definition.steps.map { ($0.key, $0) })
        #expect(steps["build"]?.transfers.artifacts == ["dist/app.tar.gz"])
        #expect(steps["test"]?.jobs.count == 4 && steps["test"]?.dependsOn == ["build"])
        for key in ["test", "staging", "production"] {
            #expect(steps[key]?.transfers.downloads.map(\.step) == ["build"], "\(key) downloads the one build")
        }
        #expect(steps["staging"]?.environment == "staging" && steps["production"]?.environment == "production")
        #expect(steps["approve"]?.block != nil && steps["production"]?.dependsOn == ["approve"])
        #expect(steps["production"]?.agents == ["queue": "deploy"] && steps["production"]?.secrets == ["DEPLOY_TOKEN"])
    }

    @Test func theQuickStartPipelineParses() throws {
        let yaml = try String(contentsOf: Self.examples.appendingPathComponent("hello.yml"), encoding: .utf8)
        #expect(try !PipelineParser(file: "hello.yml").parse(yaml).steps.isEmpty)
    }
}
