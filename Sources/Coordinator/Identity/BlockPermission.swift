import GantryPipeline
import GantryProtocol

extension Principal {
    /// Whether this caller may approve or reject `block`. With `allowed:`, a binding at
    /// least as high as one of its roles (for `deployer:ENV+ENV`, one that may deploy to
    /// each of those environments), or its name among the identities. Without, whoever
    /// may deploy: a gate usually stands before a deploy.
    public func mayDecide(_ block: BlockStep) -> Bool {
        guard job == nil else { return false }
        if block.roles.isEmpty && block.identities.isEmpty { return allows(.deploy) }
        if block.identities.contains(identity) { return true }
        return block.roles.contains { text in
            guard let required = try? API.RoleBinding(parsing: text) else { return false }
            if let environments = required.environments, required.role == .deployer {
                return environments.allSatisfy(mayDeploy(to:))
            }
            return bindings.contains { $0.role >= required.role }
        }
    }
}
