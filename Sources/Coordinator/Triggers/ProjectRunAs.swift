import GantryProtocol

/// Who a project's pipeline is submitted as, looked up when it starts (a push, a
/// schedule's tick): its run-as identity as that identity is now, or nobody
/// (`project:NAME`, no role). A disabled, gone or no-longer-submitting identity refuses.
enum ProjectRunAs {
    struct Refusal: Error, Sendable, CustomStringConvertible {
        var description: String
    }

    static func resolve(_ project: StoredProject, identities: any IdentityStore) throws -> Result<Principal?, Refusal> {
        guard let name = project.runAs else { return .success(nil) }
        guard let identity = try identities.identity(named: name), identity.disabledAt == nil else {
            return .failure(Refusal(description: "the project runs as \(name), which is disabled or gone: nothing started"))
        }
        let principal = Principal(identity: name, tokenID: "project:\(project.name)", bindings: identity.bindings)
        guard principal.allows(.submit) else {
            return .failure(
                Refusal(description: "the project runs as \(name) (\(principal.rolesDescription)), which may not submit: nothing started"))
        }
        return .success(principal)
    }
}
