import Foundation
import GRDB

/// One step of the schema: statements separated by `;` at line ends, run in order.
struct PostgresMigration: Sendable {
    var name: String
    var sql: String

    /// The statements one by one: the extended protocol takes one per query.
    var statements: [String] {
        sql.components(separatedBy: ";\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .map { $0.hasSuffix(";") ? String($0.dropLast()) : $0 }.filter { !$0.isEmpty }
    }
}

/// Applies `PostgresSchema.migrations` that the database has not seen, in one transaction
/// that holds an advisory lock: coordinators that start together take turns, the first
/// migrates, the others find nothing left to do. A database migrated by a newer release
/// (a name this binary does not know) is refused rather than run with a schema it does
/// not understand.
enum PostgresMigrator {
    /// The advisory lock's key: "gantry" in ASCII, unlikely to meet another application's.
    static let lockKey: Int64 = 0x67_61_6E_74_72_79

    static func migrate(_ pool: PostgresPool, migrations: [PostgresMigration] = PostgresSchema.migrations) throws {
        let known = Set(migrations.map(\.name))
        try pool.write { db in
            try await db.execute("SELECT pg_advisory_xact_lock(\(lockKey))")
            try await db.execute(
                "CREATE TABLE IF NOT EXISTS gantry_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            let applied = try await db.rows("SELECT name FROM gantry_migrations").map { row -> String in row["name"] }
            let unknown = applied.filter { !known.contains($0) }
            guard unknown.isEmpty else { throw PostgresStoreError.schemaTooNew(applied: unknown.sorted()) }
            for migration in migrations where !applied.contains(migration.name) {
                for statement in migration.statements { try await db.execute(statement) }
                try await db.execute("INSERT INTO gantry_migrations (name) VALUES (?)", .values(migration.name))
            }
        }
    }
}
