import Foundation
import GRDB

extension PostgresStore {
    /// Why a reseal started over: a row changed between reading and writing.
    struct RowsChanged: Error, CustomStringConvertible {
        var table: String
        var description: String { "the rows of \(table) kept changing while they were re-sealed; run rotate-key again" }
    }

    /// `rotate-key`'s re-sealing of every row of a table, all or nothing.
    ///
    /// SQLite runs `reseal` inside its write transaction. Here it cannot: a transaction
    /// runs as an async closure on the pool's thread and may outlive a timed-out caller,
    /// so the caller's synchronous, non-`Sendable` closure must not be called from it. So
    /// the rows are read and re-sealed on the caller's thread, then written in one
    /// transaction that first locks every row (`FOR UPDATE`) and checks that they are
    /// still exactly the rows re-sealed. A row added, removed or changed in between (by
    /// another coordinator) rolls the write back and the whole reseal starts over, so no
    /// row is left under the old key and no concurrent change is overwritten.
    func resealAll<Record: FetchableRecord & PersistableRecord & Equatable & Sendable>(
        _ type: Record.Type, key: String, _ reseal: (Record) throws -> Record
    ) throws -> Int {
        let select = "SELECT * FROM \(Record.databaseTableName) ORDER BY \(key)"
        for _ in 0..<10 {
            let rows = try pool.read { db in try await db.fetchAll(Record.self, select) }
            let sealed = try rows.map(reseal)
            let written: Int? = try pool.writeOrRollBack { db in
                guard try await db.fetchAll(Record.self, select + " FOR UPDATE") == rows else {
                    throw PostgresPool.Rollback<Int?>(value: nil)
                }
                for row in sealed { try await db.update(row, key: key) }
                return sealed.count
            }
            if let written { return written }
        }
        throw RowsChanged(table: Record.databaseTableName)
    }
}

extension PostgresSession {
    /// `UPDATE <table> SET <every column> WHERE <key> = <the record's key>`: GRDB's
    /// `update(db)`, which the SQLite side uses.
    func update<Record: EncodableRecord & TableRecord>(_ record: Record, key: String) async throws {
        let columns = try record.databaseDictionary.sorted { $0.key < $1.key }
        guard let keyValue = columns.first(where: { $0.key == key })?.value else {
            throw PostgresStoreError.rowNotFound(table: Record.databaseTableName, key: key)
        }
        let assignments = columns.map { "\"\($0.key)\" = ?" }.joined(separator: ", ")
        try await expectOne(
            "UPDATE \(Record.databaseTableName) SET \(assignments) WHERE \"\(key)\" = ?", columns.map(\.value) + [keyValue],
            table: Record.databaseTableName, key: String(describing: keyValue))
    }
}
