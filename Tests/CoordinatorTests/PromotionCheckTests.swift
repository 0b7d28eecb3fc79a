import Foundation
@testable import GantryCoordinator
import GantryPipeline
import Testing

/// What promoting a pipeline demands of its source (`PromotionCheck`), and how a promoted
/// pipeline's artifacts resolve (`PromotedArtifacts`), without HTTP.
@Suite("Promotion rules")
struct PromotionCheckTests {
    static let deploy = """
        steps:
          - key: deploy
            environment: production
            download: [{step: build, path: "dist/*"}]
            command: ./deploy.sh
        """

    func source(branch: String = "main", states: [JobState] = [.succeeded], keys: [String] = ["build"]) -> PromotionCheck {
        var pipeline = Fixture.pipeline("src", at: Fixture.t0)
        pipeline.branch = branch
        let jobs = zip(states, keys).enumerated().map { index, pair in
            var job = Fixture.job("j\(index)", pipeline: pipeline, position: index, state: pair.0)
            job.key = pair.1
            return job
        }
        return PromotionCheck(
            origin: "--from-pipeline", source: pipeline, sourceJobs: jobs,
            environments: EnvironmentRules(rules: ["production": .init(branches: ["main", "release/*"])]))
    }

    func definition(_ yaml: String = deploy) throws -> PipelineDefinition {
        try PipelineParser(file: "deploy.yml", promotes: true).parse(yaml)
    }

    func refusal(_ check: PromotionCheck, repository: String = "https://git.example.com/app.git") throws -> String? {
        do {
            try check.check(try definition(), repository: repository, file: "deploy.yml")
            return nil
        } catch let error as PipelineError {
            return error.message
        } catch let error as DeployRefusal {
            return error.description
        }
    }

    @Test func aSucceededBuildOfTheSameRepositoryFromAnAcceptedBranchIsPromoted() throws {
        #expect(try refusal(source()) == nil)
        #expect(try refusal(source(branch: "release/2.0")) == nil)
        // A submission naming no repository is not compared.
        #expect(try refusal(source(), repository: "") == nil)
    }

    @Test func aFailedOrRunningSourceIsRefused() throws {
        #expect(try refusal(source(states: [.failed]))?.contains("which is failed") == true)
        #expect(try refusal(source(states: [.running]))?.contains("which is running") == true)
    }

    @Test func anotherRepositorysBuildIsRefused() throws {
        let message = try refusal(source(), repository: "https://git.example.com/other.git")
        #expect(message?.contains("promotion rule `repository`") == true, "\(message ?? "")")
    }

    /// The deploy's own `--branch main` is what its submitter says: the source's branch
    /// must meet the environment's `branches` too.
    @Test func aFeatureBranchBuildDoesNotReachAGuardedEnvironment() throws {
        let message = try refusal(source(branch: "feature/x"))
        #expect(message?.contains("rule `branches`") == true && message?.contains("feature/x") == true, "\(message ?? "")")
    }

    @Test func aDownloadedStepMustBeAStepOfTheSource() throws {
        let message = try refusal(source(keys: ["compile"]))
        #expect(message?.contains("step `build`") == true && message?.contains("src") == true, "\(message ?? "")")
    }

    func row(_ pipeline: String, _ step: String, _ name: String, _ sha: String) -> StoredArtifact {
        StoredArtifact(
            sha256: sha, name: name, size: 1, pipelineId: pipeline, stepKey: step, jobId: "\(pipeline)-\(step)", attempt: 1,
            commit: "c", agentId: "a/1", createdAt: Fixture.t0)
    }

    /// A step key the source has resolves to the source only: the promoting pipeline's
    /// own step of that key never shadows (or joins) the promoted digests.
    @Test func aSourceStepKeyResolvesToTheSourceOnly() {
        let own = [row("deploy", "build", "dist/app.tar.gz", "fresh"), row("deploy", "report", "r.txt", "report")]
        let source = [row("src", "build", "dist/app.tar.gz", "promoted")]
        let resolved = PromotedArtifacts.resolve(own: own, source: source, sourceKeys: ["build", "test"])
        #expect(resolved.filter { $0.stepKey == "build" }.map(\.sha256) == ["promoted"])
        #expect(resolved.filter { $0.stepKey == "report" }.map(\.sha256) == ["report"])
    }
}
