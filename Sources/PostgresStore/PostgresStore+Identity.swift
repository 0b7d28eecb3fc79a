import Foundation
import GRDB
import GantryCoordinator

/// Identities and their tokens. Names are ordered `COLLATE "C"` (by bytes), as SQLite
/// orders them, whatever collation the database was created with.
extension PostgresStore: IdentityStore {
    public func identity(named name: String) throws -> StoredIdentity? {
        try pool.read { db in try await db.fetchOne(StoredIdentity.self, "SELECT * FROM identities WHERE name = ?", .values(name)) }
    }

    public func identities() throws -> [StoredIdentity] {
        try pool.read { db in try await db.fetchAll(StoredIdentity.self, "SELECT * FROM identities ORDER BY name COLLATE \"C\"") }
    }

    /// One statement, so two coordinators saving the same name cannot both insert.
    public func save(_ identity: StoredIdentity) throws {
        try pool.write { db in
            _ = try await db.insert(
                identity,
                """
                ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, roles = excluded.roles, created_at = excluded.created_at,
                    created_by = excluded.created_by, disabled_at = excluded.disabled_at
                """)
        }
    }

    public func disableIdentity(named name: String, at date: Date) throws -> Bool {
        try pool.write { db in
            try await db.execute(SQLiteStore.revokeIdentityTokensSQL, .values(date, name))
            return try await db.execute(SQLiteStore.disableIdentitySQL, .values(date, name)) > 0
        }
    }

    public func insert(_ token: StoredAPIToken) throws {
        try pool.write { db in _ = try await db.insert(token) }
    }

    public func token(digest: Data) throws -> StoredAPIToken? {
        try pool.read { db in try await db.fetchOne(StoredAPIToken.self, "SELECT * FROM api_tokens WHERE hash = ?", .values(digest)) }
    }

    public func tokens(identity: String) throws -> [StoredAPIToken] {
        try pool.read { db in
            try await db.fetchAll(StoredAPIToken.self, "SELECT * FROM api_tokens WHERE identity = ? ORDER BY created_at", .values(identity))
        }
    }

    public func revokeToken(id: String, identity: String?, at date: Date) throws -> Bool {
        let query = SQLiteStore.revokeTokenQuery(id: id, identity: identity, at: date)
        return try pool.write { db in try await db.execute(query.sql, query.arguments) > 0 }
    }

    public func markTokenUsed(id: String, at date: Date) throws {
        try pool.write { db in _ = try await db.execute(SQLiteStore.markTokenUsedSQL, .values(date, id)) }
    }
}
