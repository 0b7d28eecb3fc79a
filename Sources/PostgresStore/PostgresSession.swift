import Foundation
import GRDB
import Logging
import NIOCore
import PostgresNIO

/// One connection lent to a `PostgresPool.read` or `write` closure: statements written in
/// SQLite's dialect where the two agree (`?` markers, `ON CONFLICT`, `RETURNING`), records
/// read and written through their GRDB mapping (`PostgresValues`).
public struct PostgresSession: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// Runs one statement and returns the rows it changed (or returned).
    @discardableResult
    public func execute(_ sql: String, _ arguments: [DatabaseValue] = []) async throws -> Int {
        let result: PostgresQueryResult = try await run(sql, arguments)
        return result.metadata.rows ?? result.rows.count
    }

    /// Runs several statements of fixed text (DDL, `BEGIN`), without parameters.
    public func executeScript(_ sql: String) async throws {
        _ = try await connection.simpleQuery(sql).get()
    }

    public func rows(_ sql: String, _ arguments: [DatabaseValue] = []) async throws -> [Row] {
        let result: PostgresQueryResult = try await run(sql, arguments)
        return try result.rows.map(PostgresValues.row)
    }

    public func fetchAll<Record: FetchableRecord>(
        _ type: Record.Type, _ sql: String, _ arguments: [DatabaseValue] = []
    ) async throws -> [Record] {
        try await rows(sql, arguments).map { try Record(row: $0) }
    }

    public func fetchOne<Record: FetchableRecord>(
        _ type: Record.Type, _ sql: String, _ arguments: [DatabaseValue] = []
    ) async throws -> Record? {
        try await rows(sql, arguments).first.map { try Record(row: $0) }
    }

    /// The first column of the first row, or nil when there is no row or it is NULL.
    public func scalar<Value: DatabaseValueConvertible>(
        _ type: Value.Type, _ sql: String, _ arguments: [DatabaseValue] = []
    ) async throws -> Value? {
        guard let row = try await rows(sql, arguments).first, let cell = firstColumn(sql, row) else { return nil }
        return Value.fromDatabaseValue(cell)
    }

    /// `INSERT INTO <table> (columns) VALUES (…)` with every column the record encodes.
    /// `conflict`: a clause after it, such as `ON CONFLICT (id) DO NOTHING`.
    @discardableResult
    public func insert<Record: EncodableRecord & TableRecord>(_ record: Record, _ conflict: String = "") async throws -> Int {
        let columns = try record.databaseDictionary.sorted { $0.key < $1.key }
        let names = columns.map { "\"\($0.key)\"" }.joined(separator: ", ")
        let markers = Array(repeating: "?", count: columns.count).joined(separator: ", ")
        return try await execute(
            "INSERT INTO \(Record.databaseTableName) (\(names)) VALUES (\(markers)) \(conflict)", columns.map(\.value))
    }

    private func run(_ sql: String, _ arguments: [DatabaseValue]) async throws -> PostgresQueryResult {
        let query = try PostgresValues.query(sql, arguments)
        let future: EventLoopFuture<PostgresQueryResult> = connection.query(query, logger: logger)
        return try await future.get()
    }

    /// `Row` from a dictionary has no column order; a scalar query names one column.
    private func firstColumn(_ sql: String, _ row: Row) -> DatabaseValue? {
        guard let name = row.columnNames.first, row.count == 1 else { return nil }
        let value: DatabaseValue = row[name]
        return value.isNull ? nil : value
    }
}

extension Array where Element == DatabaseValue {
    /// `[a, b, nil]` as database values, the way GRDB's `StatementArguments` reads them.
    public static func values(_ values: (any DatabaseValueConvertible)?...) -> [DatabaseValue] {
        values.map { $0?.databaseValue ?? .null }
    }
}
