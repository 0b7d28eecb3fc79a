import Foundation
import GRDB
import GantryProtocol

/// A person or a service account that holds API tokens.
public struct StoredIdentity: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "identities"

    public enum Kind: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
        case person
        case service
    }

    public var name: String
    public var kind: Kind
    /// JSON of `[API.RoleBinding]`.
    public var roles: String
    public var createdAt: Date
    public var createdBy: String?
    public var disabledAt: Date?

    enum CodingKeys: String, CodingKey {
        case name, kind, roles
        case createdAt = "created_at"
        case createdBy = "created_by"
        case disabledAt = "disabled_at"
    }

    public init(name: String, kind: Kind, bindings: [API.RoleBinding], createdAt: Date, createdBy: String?) {
        self.name = name
        self.kind = kind
        self.roles = Self.encode(bindings)
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.disabledAt = nil
    }

    public var bindings: [API.RoleBinding] {
        get { (try? JSONDecoder().decode([API.RoleBinding].self, from: Data(roles.utf8))) ?? [] }
        set { roles = Self.encode(newValue) }
    }

    static func encode(_ bindings: [API.RoleBinding]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(bindings)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }

    /// Names are what people type and what the audit log shows: 1-64 of letters, digits,
    /// `-`, `_`, `.`, `@`.
    public static func nameProblem(_ name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= 64 else { return "must be 1 to 64 characters" }
        guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.@".contains($0)) }) else {
            return "may contain only letters, digits, '-', '_', '.' and '@'"
        }
        return nil
    }
}

/// An API token: only its SHA-256 is stored; the token is shown once when created.
public struct StoredAPIToken: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "api_tokens"

    public var id: String
    public var identity: String
    public var hash: Data
    public var description: String
    public var createdAt: Date
    public var expiresAt: Date?
    public var revokedAt: Date?
    public var lastUsedAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, identity, hash, description
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case revokedAt = "revoked_at"
        case lastUsedAt = "last_used_at"
    }

    public func isUsable(at now: Date) -> Bool {
        revokedAt == nil && (expiresAt.map { now < $0 } ?? true)
    }
}
