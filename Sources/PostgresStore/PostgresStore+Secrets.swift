import Foundation
import GRDB
import GantryCoordinator

extension PostgresStore: SecretStore {
    public func secrets() throws -> [StoredSecret] {
        try pool.read { db in try await db.fetchAll(StoredSecret.self, Self.allSecretsSQL) }
    }

    /// One statement that keeps the row's `created_at`: a read then a write would let two
    /// coordinators saving the same secret both insert.
    public func save(_ secret: StoredSecret) throws {
        try pool.write { db in
            _ = try await db.insert(
                secret,
                """
                ON CONFLICT (name, scope) DO UPDATE SET sealed = excluded.sealed, key_id = excluded.key_id,
                    updated_at = excluded.updated_at, updated_by = excluded.updated_by
                """)
        }
    }

    public func deleteSecret(name: String, scope: String) throws -> Bool {
        try pool.write { db in try await db.execute("DELETE FROM secrets WHERE name = ? AND scope = ?", .values(name, scope)) > 0 }
    }

    /// `reseal` is the caller's synchronous, non-`Sendable` closure, so it runs here on the
    /// caller's thread, on rows read first, never inside the transaction (which runs on
    /// the pool's thread). The transaction then locks the table against every other
    /// writer, checks that the rows are still the ones resealed and writes them; if
    /// another coordinator changed a secret in between, it starts over with the new rows.
    /// So a row sealed under the old key is never written back over a newer value, and
    /// nothing changes when `reseal` throws.
    public func resealAll(_ reseal: (StoredSecret) throws -> StoredSecret) throws -> Int {
        while true {
            let rows = try secrets()
            let resealed = try rows.map(reseal)
            let written = try pool.write { db -> Int? in
                // Blocks inserts, updates and deletes until COMMIT; reads go on.
                try await db.execute("LOCK TABLE secrets IN SHARE ROW EXCLUSIVE MODE")
                guard try await db.fetchAll(StoredSecret.self, Self.allSecretsSQL) == rows else { return nil }
                for row in resealed {
                    try await db.execute(
                        """
                        UPDATE secrets SET sealed = ?, key_id = ?, created_at = ?, updated_at = ?, updated_by = ?
                        WHERE name = ? AND scope = ?
                        """,
                        .values(row.sealed, row.keyId, row.createdAt, row.updatedAt, row.updatedBy, row.name, row.scope))
                }
                return resealed.count
            }
            if let written { return written }
        }
    }

    /// Ordered by bytes, as SQLite orders them.
    static let allSecretsSQL = "SELECT * FROM secrets ORDER BY name COLLATE \"C\", scope COLLATE \"C\""
}
