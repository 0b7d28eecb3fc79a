#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension API {
    /// `GET /v1/whoami`.
    public struct WhoAmI: Codable, Sendable {
        public var identity: String
        public var tokenId: String
        public var roles: [RoleBinding]
        public var permissions: [String]

        public init(identity: String, tokenId: String, roles: [RoleBinding], permissions: [String]) {
            self.identity = identity
            self.tokenId = tokenId
            self.roles = roles
            self.permissions = permissions
        }
    }

    public struct Identity: Codable, Sendable {
        public var name: String
        /// `person` or `service`.
        public var kind: String
        public var roles: [RoleBinding]
        public var createdAt: Date
        public var createdBy: String?
        public var disabledAt: Date?

        public init(name: String, kind: String, roles: [RoleBinding], createdAt: Date, createdBy: String?, disabledAt: Date?) {
            self.name = name
            self.kind = kind
            self.roles = roles
            self.createdAt = createdAt
            self.createdBy = createdBy
            self.disabledAt = disabledAt
        }
    }

    /// `POST /v1/identities` and `PUT /v1/identities/{name}` (name ignored there).
    public struct SaveIdentity: Codable, Sendable {
        public var name: String?
        public var kind: String?
        /// Command-line forms: `viewer`, `developer`, `deployer:production+staging`, `admin`.
        public var roles: [String]

        public init(name: String?, kind: String?, roles: [String]) {
            self.name = name
            self.kind = kind
            self.roles = roles
        }
    }

    /// An API token as listed: never its secret.
    public struct Token: Codable, Sendable {
        public var id: String
        public var identity: String
        public var description: String
        public var createdAt: Date
        public var expiresAt: Date?
        public var revokedAt: Date?
        public var lastUsedAt: Date?

        public init(
            id: String, identity: String, description: String, createdAt: Date, expiresAt: Date?, revokedAt: Date?,
            lastUsedAt: Date?
        ) {
            self.id = id
            self.identity = identity
            self.description = description
            self.createdAt = createdAt
            self.expiresAt = expiresAt
            self.revokedAt = revokedAt
            self.lastUsedAt = lastUsedAt
        }
    }

    /// `POST /v1/tokens` and `POST /v1/identities/{name}/tokens`.
    public struct CreateToken: Codable, Sendable {
        public var description: String?
        /// Lifetime as a duration (`90d`, `12h`, `1h30m`); default 90 days, at most 366 days.
        public var expiresIn: String?

        public init(description: String?, expiresIn: String?) {
            self.description = description
            self.expiresIn = expiresIn
        }
    }

    /// The answer to a token creation: the only time the secret is shown.
    public struct CreatedToken: Codable, Sendable {
        public var token: Token
        public var secret: String

        public init(token: Token, secret: String) {
            self.token = token
            self.secret = secret
        }
    }
}

extension API {
    /// `POST /v1/agents/{host}/{slot}/forget`: the host whose certificates were revoked.
    public struct ForgottenAgent: Codable, Sendable {
        public var host: String
        public var certificatesRevoked: Int
        public var disconnected: [String]

        public init(host: String, certificatesRevoked: Int, disconnected: [String]) {
            self.host = host
            self.certificatesRevoked = certificatesRevoked
            self.disconnected = disconnected
        }
    }

    /// `POST /v1/agents/{host}/{slot}/drain`.
    public struct DrainedAgent: Codable, Sendable {
        public var agentId: String

        public init(agentId: String) {
            self.agentId = agentId
        }
    }
}
