import Foundation
import GRDB

extension SQLiteStore: IdentityStore {
    public func identity(named name: String) throws -> StoredIdentity? {
        try database.read { try StoredIdentity.fetchOne($0, key: name) }
    }

    public func identities() throws -> [StoredIdentity] {
        try database.read { try StoredIdentity.order(Column("name")).fetchAll($0) }
    }

    public func save(_ identity: StoredIdentity) throws {
        try database.write { try identity.save($0) }
    }

    public func disableIdentity(named name: String, at date: Date) throws -> Bool {
        try database.write { db in
            try db.execute(sql: Self.revokeIdentityTokensSQL, arguments: [date, name])
            try db.execute(sql: Self.disableIdentitySQL, arguments: [date, name])
            return db.changesCount > 0
        }
    }

    public func insert(_ token: StoredAPIToken) throws {
        try database.write { try token.insert($0) }
    }

    public func token(digest: Data) throws -> StoredAPIToken? {
        try database.read { try StoredAPIToken.filter(Column("hash") == digest).fetchOne($0) }
    }

    public func tokens(identity: String) throws -> [StoredAPIToken] {
        try database.read {
            try StoredAPIToken.filter(Column("identity") == identity).order(Column("created_at")).fetchAll($0)
        }
    }

    public func revokeToken(id: String, identity: String?, at date: Date) throws -> Bool {
        let query = Self.revokeTokenQuery(id: id, identity: identity, at: date)
        return try database.write { db in
            try db.execute(sql: query.sql, arguments: StatementArguments(query.arguments))
            return db.changesCount > 0
        }
    }

    public func markTokenUsed(id: String, at date: Date) throws {
        try database.write {
            try $0.execute(sql: Self.markTokenUsedSQL, arguments: [date, id])
        }
    }

    // MARK: - Statements every back end runs

    /// Parameters: the time, the identity's name.
    public static let revokeIdentityTokensSQL = "UPDATE api_tokens SET revoked_at = ? WHERE identity = ? AND revoked_at IS NULL"
    /// Parameters: the time, the identity's name. Changes no row when already disabled.
    public static let disableIdentitySQL = "UPDATE identities SET disabled_at = ? WHERE name = ? AND disabled_at IS NULL"
    /// Parameters: the time, the token's id.
    public static let markTokenUsedSQL = "UPDATE api_tokens SET last_used_at = ? WHERE id = ?"

    /// Revokes an unrevoked token, only if `identity` holds it when given.
    public static func revokeTokenQuery(id: String, identity: String?, at date: Date) -> (sql: String, arguments: [DatabaseValue]) {
        guard let identity else {
            return ("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [date.databaseValue, id.databaseValue])
        }
        return (
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND identity = ? AND revoked_at IS NULL",
            [date.databaseValue, id.databaseValue, identity.databaseValue]
        )
    }
}
