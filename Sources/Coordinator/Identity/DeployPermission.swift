import GantryPipeline

/// Who may submit a pipeline that deploys: a step with `environment: NAME` receives that
/// environment's secrets and, once environments are recorded, makes a deployment. So
/// submitting one needs `deploy` for every environment it names (an admin, or a deployer
/// whose binding names it or names none), checked before anything is stored.
public struct DeployRefusal: Error, CustomStringConvertible, Equatable {
    public var description: String
}

extension Principal {
    public func checkMayDeploy(_ definition: PipelineDefinition) throws(DeployRefusal) {
        let refused = definition.environments.sorted().filter { !mayDeploy(to: $0) }
        guard refused.isEmpty else {
            throw DeployRefusal(
                description: "\(identity) (\(rolesDescription)) may not deploy to \(refused.joined(separator: ", ")): "
                    + "a step with `environment:` needs the deploy permission for it (role deployer naming it, or admin)")
        }
    }
}
