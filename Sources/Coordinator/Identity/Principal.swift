import GantryProtocol

/// The authenticated caller of one API request: an identity, the token it presented, and
/// the roles it holds. Built by `Authenticator` from the bearer token, checked against
/// each route's declared permission before the handler runs.
public struct Principal: Sendable, Equatable {
    public var identity: String
    /// The token's id (`tok_…`), or `admin.token` for the bootstrap token in the state dir.
    public var tokenID: String
    public var bindings: [API.RoleBinding]
    /// Set for a step calling with its job token (`JobToken`): such a caller holds no
    /// role, may call only routes with `APIRoute.jobTokenAllowed`, and only for its own
    /// pipeline (`Router.on` enforces both).
    public var job: JobGrant?

    /// What a job token stands for: one attempt of one job, of one pipeline.
    public struct JobGrant: Sendable, Equatable {
        public var jobID: String
        public var attempt: UInt32
        public var pipelineID: String

        public init(jobID: String, attempt: UInt32, pipelineID: String) {
            self.jobID = jobID
            self.attempt = attempt
            self.pipelineID = pipelineID
        }
    }

    public init(identity: String, tokenID: String, bindings: [API.RoleBinding], job: JobGrant? = nil) {
        self.identity = identity
        self.tokenID = tokenID
        self.bindings = bindings
        self.job = job
    }

    /// The principal of a step's job token: `job:<id>` in the audit log, its token named
    /// by job and attempt (never by its MAC).
    public static func job(_ grant: JobGrant) -> Principal {
        Principal(
            identity: "job:\(grant.jobID)", tokenID: "job-token:\(grant.jobID)#\(grant.attempt)", bindings: [], job: grant)
    }

    /// Role permissions only: a job principal holds none (its one grant is checked by
    /// route, see `Router.on`).
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

    /// Whether this caller may deploy to every environment: an admin, or a deployer whose
    /// binding names no environments. What a branch's cache that every branch restores
    /// (the default branch's) needs, since production deploys restore it too.
    public var mayDeployEverywhere: Bool {
        bindings.contains { binding in
            switch binding.role {
            case .admin: return true
            case .deployer: return binding.environments == nil
            case .viewer, .developer: return false
            }
        }
    }

    /// The highest role held, for messages.
    public var highestRole: API.Role? { bindings.map(\.role).max() }

    public var rolesDescription: String {
        if let job { return "job token of job \(job.jobID) attempt \(job.attempt)" }
        return bindings.isEmpty ? "no role" : bindings.map(\.description).joined(separator: ", ")
    }
}
