import Foundation
import GRDB

/// Pieces of statements where SQLite's dialect and PostgreSQL's part ways.
enum PostgresFragments {
    /// SQLite reads `LIMIT -1` as no limit, PostgreSQL refuses it; `LIMIT NULL` is its
    /// no limit.
    static func limit(_ limit: Int) -> DatabaseValue {
        limit < 0 ? .null : limit.databaseValue
    }

    /// `?, ?, …` for an `IN` list.
    static func markers(_ count: Int) -> String {
        Array(repeating: "?", count: count).joined(separator: ", ")
    }

    /// `RETURNING` has no order; SQLite's deletes return what they read, in key order.
    static func ordered(_ statement: String, by order: String) -> String {
        "WITH changed AS (\(statement)) SELECT * FROM changed ORDER BY \(order)"
    }
}
