import Foundation
import GantryPipeline
import GantryProtocol

/// `gantry rollback ENV --to DEPLOYMENT`: a new pipeline that runs the deploying step of
/// an earlier successful deployment again, on the same source (repository, commit,
/// branch), promoting the same pipeline it downloaded its artifacts from, so its
/// `download:`s resolve to the same, immutable, artifacts: the same digests. It is
/// checked like any submission (the caller's deploy permission, the environment's rules,
/// secrets, the promotion), and when the environment requires approval it starts with a
/// block that asks for it.
extension CoordinatorCore {
    public enum RollbackRefusal: Error, Sendable, Equatable, CustomStringConvertible {
        case notFound(String)
        case notADeployment(String, environment: String)
        case notSuccessful(String, state: String)
        case artifactsChanged(String, source: String, missing: [String])

        public var description: String {
            switch self {
            case .notFound(let id): return "no deployment \(id)"
            case .notADeployment(let id, let environment): return "job \(id) is not a deployment to \(environment)"
            case .notSuccessful(let id, let state):
                return "deployment \(id) ended \(state): only a successful deployment can be rolled back to"
            case .artifactsChanged(let id, let source, let missing):
                return "deployment \(id) deployed sha256 \(missing.joined(separator: ", ")), which pipeline \(source) no longer "
                    + "holds (a retried step replaced it, or retention removed it): a rollback would not deploy the same bytes"
            }
        }
    }

    /// The block key a rollback to an environment that requires approval starts with.
    public static let rollbackApprovalKey = "approve-rollback"

    public nonisolated func rollback(
        environment: String, to deploymentID: String, submittedBy: String?, permit: (PipelineDefinition) throws -> Void
    ) async throws -> Result<API.Pipeline, RollbackRefusal> {
        await flush()
        guard let job = try store.job(id: deploymentID), let pipeline = try store.pipeline(id: job.pipelineId) else {
            return .failure(.notFound(deploymentID))
        }
        guard job.environment == environment, job.block == nil else { return .failure(.notADeployment(deploymentID, environment: environment)) }
        guard job.state == .succeeded else { return .failure(.notSuccessful(deploymentID, state: job.state.rawValue)) }

        var deploy = PipelineDefinition.Step.built(
            key: job.key, name: job.name, commands: job.commands, env: job.env, agents: job.agents,
            timeoutSeconds: job.timeoutSeconds, cancelGraceSeconds: job.cancelGraceSeconds, dependsOn: [], retry: job.retry)
        deploy.secrets = job.secrets
        deploy.environment = job.environment
        deploy.priority = job.priority
        deploy.softFail = job.softFail
        deploy.concurrency = job.concurrency
        deploy.jobs[0].concurrency = job.concurrency
        deploy.checkout = job.checkout ?? .default
        deploy.transfers = job.transfers
        var steps = [deploy]
        if configuration.environments.rules[environment]?.requiredApproval == true {
            let block = PipelineDefinition.Step.builtBlock(
                key: job.key == Self.rollbackApprovalKey ? Self.rollbackApprovalKey + "-2" : Self.rollbackApprovalKey, block: BlockStep(prompt: "Roll \(environment) back to deployment \(deploymentID)?"))
            steps[0].dependsOn = [block.key]
            steps.insert(block, at: 0)
        }
        // The pipeline the deployment's downloads resolved in: the one it promoted, or its own.
        let source = pipeline.artifactsFrom ?? pipeline.id
        // The same bytes or nothing: every digest the deployment downloaded must still be
        // an artifact of the pipelines its downloads resolve in (a retried build replaces
        // its artifacts under the same names).
        if let deployments = store as? any DeploymentStore, let artifacts = store as? any ArtifactStore {
            let readable = Array(Set([pipeline.id, source]))
            let missing = try deployments.deployedDigests(jobID: job.id).filter {
                try !artifacts.artifactExists(sha256: $0, size: nil, inPipelines: readable)
            }
            guard missing.isEmpty else { return .failure(.artifactsChanged(deploymentID, source: source, missing: missing)) }
        }
        let definition = PipelineDefinition.built(steps: steps, artifactsFrom: source)
        let request = API.SubmitPipeline(
            yaml: "# gantry rollback \(environment) --to \(deploymentID): step \(job.key) of pipeline \(pipeline.id) again, "
                + "promoting pipeline \(source)\nsteps: []\n",
            file: "rollback.yml", repository: pipeline.repository.isEmpty ? nil : pipeline.repository,
            commit: pipeline.commit.isEmpty ? nil : pipeline.commit, branch: pipeline.branch.isEmpty ? nil : pipeline.branch,
            env: pipeline.env, tag: pipeline.tag.isEmpty ? nil : pipeline.tag,
            message: "roll \(environment) back to deployment \(deploymentID)", fromPipeline: source)
        try SubmissionCheck.check(request)
        return .success(
            try await submit(request, definition: definition, source: "rollback", submittedBy: submittedBy, permit: permit))
    }
}
