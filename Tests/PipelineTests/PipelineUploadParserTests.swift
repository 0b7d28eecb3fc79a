@testable import GantryPipeline
import Testing

/// A file uploaded into a running pipeline (`PipelineUploadContext`), and the bootstrap
/// pipeline that uploads the repository's own file.
@Suite("Pipeline upload: parsing", .timeLimit(.minutes(1)))
struct PipelineUploadParserTests {
    static let context = PipelineUploadContext(
        existingKeys: ["build", "up", "deploy"], existingJobs: 3, later: ["deploy"], defaultKeyPrefix: "upload-1.")

    func parse(_ yaml: String, context: PipelineUploadContext = Self.context) throws(PipelineError) -> PipelineDefinition {
        try PipelineParser(file: "up.yml", upload: context).parse(yaml)
    }

    @Test func dependenciesMayNameExistingStepsButNotLaterOnes() throws {
        let definition = try parse("steps:\n  - {key: test, command: t, depends_on: [build, up]}\n  - command: k\n")
        #expect(definition.steps.map(\.key) == ["test", "upload-1.step-2"])
        #expect(definition.steps[0].dependsOn == ["build", "up"])
        #expect {
            _ = try parse("steps:\n  - key: x\n    command: x\n    depends_on: deploy\n")
        } throws: { error in
            let error = try #require(error as? PipelineError)
            return error.file == "up.yml" && error.line == 4 && error.column == 17 && error.message.contains("cycle")
        }
        #expect {
            _ = try parse("steps:\n  - {key: x, command: x, depends_on: nowhere}\n")
        } throws: { error in
            (error as? PipelineError)?.message.contains("which is not a step key") ?? false
        }
    }

    @Test func anExistingKeyIsRefusedWhereItIsWritten() {
        #expect {
            _ = try parse("steps:\n  - {key: fresh, command: f}\n  - key: build\n    command: b\n")
        } throws: { error in
            let error = try #require(error as? PipelineError)
            return error.line == 3 && error.column == 10 && error.message.contains("already a step of this pipeline")
        }
    }

    @Test func thePipelinesJobsCountTowardsTheLimit() throws {
        let full = PipelineUploadContext(existingKeys: ["up"], existingJobs: PipelineLimits.maximumJobs - 2)
        _ = try parse("steps:\n  - {key: a, command: a, parallelism: 2}\n", context: full)
        #expect {
            _ = try parse("steps:\n  - {key: a, command: a, parallelism: 3}\n", context: full)
        } throws: { error in
            let error = try #require(error as? PipelineError)
            return error.line == 2 && error.message.contains("uploads included")
        }
    }

    @Test func theBootstrapUploadsTheRepositorysPipeline() throws {
        let definition = try PipelineParser(file: PipelineBootstrap.file).parse(PipelineBootstrap.yaml)
        #expect(definition.steps.count == 1)
        let step = try #require(definition.steps.first)
        #expect(step.key == "pipeline-upload" && step.commands == ["gantry pipeline upload .gantry/pipeline.yml"])
        #expect(step.dependsOn.isEmpty && step.environment == nil && step.secrets.isEmpty)
    }
}
