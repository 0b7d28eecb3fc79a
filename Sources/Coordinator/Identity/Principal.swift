import GantryProtocol

/// The authenticated caller of one API request: an identity, the token it presented, and
/// the roles it holds. Built by `Authenticator` from the bearer token, checked against
/// each route's declared permission before the handler runs.
public struct Principal: Sendable, Equatable {
    public var identity: String
    /// The token's id (`tok_…`), or `admin.token` for the bootstrap token in the state dir.
    public var tokenID: String
    public var bindings: [API.RoleBinding]

    public init(identity: String, tokenID: String, bindings: [API.RoleBinding]) {
        self.identity = identity
        self.tokenID = tokenID
        self.bindings = bindings
    }

    public func allows(_ permission: API.Permission) -> Bool {
        bindings.contains { $0.role.permissions.contains(permission) }
    }

    /// Whether this caller may deploy to (or approve for) `environment`: an admin, or a
    /// deployer whose binding names it or names no environments.
    public func mayDeploy(to environment: String) -> Bool {
        bindings.contains { binding in
            switch binding.role {
            case .admin: return true
            case .deployer: return binding.environments.map { $0.contains(environment) } ?? true
            case .viewer, .developer: return false
            }
        }
    }

    /// The highest role held, for messages.
    public var highestRole: API.Role? { bindings.map(\.role).max() }

    public var rolesDescription: String {
        bindings.isEmpty ? "no role" : bindings.map(\.description).joined(separator: ", ")
    }
}
