import Foundation
import GRDB

extension SQLiteStore: SecretStore {
    public func secrets() throws -> [StoredSecret] {
        try database.read { try StoredSecret.order(Column("name"), Column("scope")).fetchAll($0) }
    }

    public func save(_ secret: StoredSecret) throws {
        try database.write { db in
            var row = secret
            if let existing = try StoredSecret.fetchOne(db, key: ["name": secret.name, "scope": secret.scope]) {
                row.createdAt = existing.createdAt
            }
            try row.save(db)
        }
    }

    public func deleteSecret(name: String, scope: String) throws -> Bool {
        try database.write { try StoredSecret.deleteOne($0, key: ["name": name, "scope": scope]) }
    }

    public func resealAll(_ reseal: (StoredSecret) throws -> StoredSecret) throws -> Int {
        try database.write { db in
            let rows = try StoredSecret.fetchAll(db)
            for row in rows { try reseal(row).update(db) }
            return rows.count
        }
    }
}
