import GantryPipeline

/// Who may submit a pipeline that deploys, and where its deploying steps may run.
///
/// A step with `environment: NAME` receives that environment's secrets and, once
/// environments are recorded, makes a deployment; a step selecting a trusted label
/// (`agents: {queue: deploy}`, see `TrustPolicy`) runs on a host enrolled for deploys, next
/// to the deploy steps' secrets. So:
/// - `environment: NAME` needs `deploy` for NAME (an admin, or a deployer whose binding
///   names it or names none);
/// - selecting a trusted label key needs `deploy` (any environment);
/// - a step with `environment:` must select a trusted label (unless the operator allows
///   otherwise), so its secrets reach only hosts enrolled with a join token that grants
///   the label, never any build host.
/// Checked on the request's task after parsing, before anything is stored.
public struct DeployRefusal: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The caller lacks the permission: 403.
        case forbidden
        /// The pipeline breaks the coordinator's placement rule: 422.
        case placement
    }

    public var kind: Kind
    public var description: String
}

/// The coordinator's rules for deploying steps, from `serve`'s options.
public struct DeployPolicy: Sendable, Equatable {
    public var trust: TrustPolicy
    /// `serve --allow-untrusted-environment-steps` turns this off.
    public var environmentStepsNeedTrustedAgents: Bool

    public init(trust: TrustPolicy = TrustPolicy(), environmentStepsNeedTrustedAgents: Bool = true) {
        self.trust = trust
        self.environmentStepsNeedTrustedAgents = environmentStepsNeedTrustedAgents
    }
}

extension Principal {
    public func checkMayDeploy(_ definition: PipelineDefinition, policy: DeployPolicy = DeployPolicy()) throws(DeployRefusal) {
        let refused = definition.environments.sorted().filter { !mayDeploy(to: $0) }
        guard refused.isEmpty else {
            throw DeployRefusal(
                kind: .forbidden,
                description: "\(identity) (\(rolesDescription)) may not deploy to \(refused.joined(separator: ", ")): "
                    + "a step with `environment:` needs the deploy permission for it (role deployer naming it, or admin)")
        }
        let trusted = policy.trust.trustedKeys
        if !allows(.deploy) {
            for step in definition.steps {
                if let key = step.agents.keys.sorted().first(where: trusted.contains) {
                    throw DeployRefusal(
                        kind: .forbidden,
                        description: "\(identity) (\(rolesDescription)) may not run step `\(step.key)` on agents with "
                            + "\(key)=\(step.agents[key] ?? ""): \(key) is a trusted label (deploy hosts), which needs the "
                            + "deploy permission (role deployer or admin)")
                }
            }
        }
        guard policy.environmentStepsNeedTrustedAgents, !trusted.isEmpty else { return }
        for step in definition.steps where step.environment != nil && !step.agents.keys.contains(where: trusted.contains) {
            throw DeployRefusal(
                kind: .placement,
                description: "step `\(step.key)` deploys to \(step.environment ?? "") but selects no trusted label "
                    + "(\(trusted.sorted().joined(separator: ", "))): add e.g. `agents: {\(trusted.sorted()[0]): deploy}` so its "
                    + "secrets reach only hosts enrolled for deploys (or start the coordinator with "
                    + "--allow-untrusted-environment-steps)")
        }
    }
}

extension Principal {
    /// `gantry retry JOB` runs that job's code again with its secrets: the same rules as
    /// submitting it. A job deploying to an environment needs deploy for it; one on a
    /// trusted label needs deploy.
    public func checkMayRetry(_ job: StoredJob, policy: DeployPolicy = DeployPolicy()) throws(DeployRefusal) {
        if let environment = job.environment, !mayDeploy(to: environment) {
            throw DeployRefusal(
                kind: .forbidden,
                description: "\(identity) (\(rolesDescription)) may not retry job `\(job.key)`: it deploys to \(environment), "
                    + "which needs the deploy permission for it (role deployer naming it, or admin)")
        }
        if !allows(.deploy), let key = job.agents.keys.sorted().first(where: policy.trust.trustedKeys.contains) {
            throw DeployRefusal(
                kind: .forbidden,
                description: "\(identity) (\(rolesDescription)) may not retry job `\(job.key)`: it runs on agents with "
                    + "\(key)=\(job.agents[key] ?? ""), a trusted label, which needs the deploy permission")
        }
    }
}
