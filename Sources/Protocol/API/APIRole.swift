#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension API {
    /// What an identity may do. Roles are cumulative: each holds every permission of the
    /// roles before it, so "at least developer" is a comparison.
    public enum Role: String, Codable, Sendable, CaseIterable, Comparable {
        /// Reads pipelines, jobs, logs, agents, demand and metrics.
        case viewer
        /// Also submits pipelines, cancels and retries jobs.
        case developer
        /// Also approves blocks and deploys to the environments its binding names.
        case deployer
        /// Also manages identities, every token, agents, secrets, join tokens and
        /// configuration, and reads the audit log.
        case admin

        public static func < (lhs: Role, rhs: Role) -> Bool {
            allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
        }

        /// The permissions this role grants, including those of every lesser role.
        public var permissions: Set<Permission> {
            Set(Permission.allCases.filter { $0.minimumRole <= self })
        }
    }

    /// One thing an API route does, checked before its handler runs. Each route declares
    /// exactly one (`APIRoute.permission`); each permission names the least role that has it.
    public enum Permission: String, Codable, Sendable, CaseIterable {
        /// Read pipelines, jobs, logs, agents, demand, metrics; see oneself and one's tokens.
        case read
        /// Create and revoke one's own API tokens (never with more than one's own roles).
        case manageOwnTokens = "manage_own_tokens"
        case submit
        case cancel
        case retry
        /// Approve or reject a block step.
        case approve
        /// Submit a pipeline with a step that deploys to an environment (`environment:`);
        /// limited further to the environments the deployer binding names.
        case deploy
        /// Identities and anyone's tokens.
        case manageIdentities = "manage_identities"
        /// Set, list (names only) and delete secrets.
        case manageSecrets = "manage_secrets"
        /// Forget (revoke) and drain agents.
        case manageAgents = "manage_agents"
        /// Clear build caches (`gantry cache clear`).
        case manageCaches = "manage_caches"
        /// Create and delete projects (webhook triggers).
        case manageProjects = "manage_projects"
        case readAudit = "read_audit"
        /// Register, list and delete outgoing webhooks and read their delivery log.
        case manageNotifications = "manage_notifications"

        public var minimumRole: Role {
            switch self {
            case .read, .manageOwnTokens: return .viewer
            case .submit, .cancel, .retry: return .developer
            case .approve, .deploy: return .deployer
            case .manageIdentities, .manageSecrets, .manageAgents, .manageCaches, .manageProjects, .readAudit, .manageNotifications:
                return .admin
            }
        }
    }

    /// A role held by an identity. `environments` limits a deployer's `deploy` and
    /// `approve` to those environments (nil: every environment). `scope` is `*` until
    /// projects exist; then a binding can be limited to one.
    public struct RoleBinding: Codable, Sendable, Equatable {
        public var role: Role
        public var environments: [String]?
        public var scope: String

        public init(role: Role, environments: [String]? = nil, scope: String = "*") {
            self.role = role
            self.environments = environments
            self.scope = scope
        }

        /// `admin`, `viewer`, `deployer:production+staging`: the command-line form.
        public init(parsing text: String) throws(RoleBindingError) {
            let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let first = parts.first, let role = Role(rawValue: first) else {
                throw RoleBindingError(
                    "unknown role '\(text.prefix(64))': use \(Role.allCases.map(\.rawValue).joined(separator: ", ")), "
                        + "or deployer:ENV+ENV to limit a deployer to some environments")
            }
            var environments: [String]?
            if parts.count == 2 {
                guard role == .deployer else {
                    throw RoleBindingError("only a deployer binding names environments ('\(text.prefix(64))')")
                }
                let names = parts[1].split(separator: "+", omittingEmptySubsequences: false).map(String.init)
                guard !names.isEmpty, names.count <= 64,
                    names.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 && $0.allSatisfy(Self.isNameCharacter) })
                else {
                    throw RoleBindingError(
                        "environment names are 1-63 letters, digits, '-', '_' or '.', joined by '+' ('\(text.prefix(64))')")
                }
                environments = names
            }
            self.init(role: role, environments: environments)
        }

        public var description: String {
            guard let environments else { return role.rawValue }
            return "\(role.rawValue):\(environments.joined(separator: "+"))"
        }

        static func isNameCharacter(_ character: Character) -> Bool {
            character.isASCII && (character.isLetter || character.isNumber || "-_.".contains(character))
        }
    }

    public struct RoleBindingError: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }
}
