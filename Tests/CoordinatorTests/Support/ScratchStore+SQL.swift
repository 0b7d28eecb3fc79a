import Foundation
@testable import GantryCoordinator
import GantryPostgresStore
import GRDB

/// Statements run past a store's API, on either back end: tests that tamper with rows
/// (the audit chain) or set up what no API writes.
extension ScratchStore {
    struct UnknownBackEnd: Error {}

    var isPostgres: Bool { store is PostgresStore }

    func execute(_ sql: String, _ arguments: [DatabaseValue] = []) throws {
        switch store {
        case let sqlite as SQLiteStore:
            try sqlite.database.write { try $0.execute(sql: sql, arguments: StatementArguments(arguments)) }
        case let postgres as PostgresStore:
            _ = try postgres.pool.write { db in try await db.execute(sql, arguments) }
        default:
            throw UnknownBackEnd()
        }
    }

    /// Inserts `record` as it is, bypassing every rule of the store's own writes.
    func insert<Record: PersistableRecord & Sendable>(_ record: Record) throws {
        switch store {
        case let sqlite as SQLiteStore:
            try sqlite.database.write { try record.insert($0) }
        case let postgres as PostgresStore:
            _ = try postgres.pool.write { db in try await db.insert(record) }
        default:
            throw UnknownBackEnd()
        }
    }
}
