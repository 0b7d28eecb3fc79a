import Foundation
import GRDB
import GantryCoordinator

/// `gantry-coordinator migrate-store`: every row of a SQLite database copied into an
/// empty PostgreSQL one.
///
/// The schemas are the same tables and columns (`PostgresSchema`), so the copy is generic:
/// each table's rows as GRDB reads them, inserted in batches with untyped parameters that
/// PostgreSQL parses as the column's type (SQLite's date text as `timestamptz`, 0/1 as
/// `bigint`). SQLite's rowids become the identity columns PostgreSQL pages by, so cursors
/// and the audit chain's sequence numbers stay the same; the identity sequences then
/// continue after the highest copied value. The target must be empty: a copy into a
/// database in use would mix two histories. Batches commit one by one (a long history
/// is gigabytes of logs); a copy that fails leaves a partial target, which the emptiness
/// check then refuses: drop and create the database again, and rerun.
public enum SQLiteToPostgres {
    public struct TableCount: Sendable, Equatable {
        public var table: String
        public var rows: Int
    }

    /// Tables in an order that satisfies every foreign key.
    static let tables = [
        "pipelines", "jobs", "attempts", "log_chunks", "identities", "api_tokens", "secrets", "audit_log",
        "join_tokens", "enrollments", "revoked_hosts", "meta_data", "artifacts", "artifact_uploads",
        "artifact_deployments", "caches", "projects", "webhook_deliveries", "schedules", "schedule_runs",
        "notification_endpoints", "notification_events", "notification_deliveries",
    ]

    /// Columns that SQLite keeps as its rowid and PostgreSQL as an identity column.
    static let identities: [String: String] = [
        "pipelines": "rowid", "jobs": "rowid", "audit_log": "seq", "notification_events": "id",
        "notification_deliveries": "seq",
    ]

    /// Rows per INSERT: well under PostgreSQL's 65,535 parameters for the widest table.
    static let batchRows = 200

    /// Copies `sqlitePath` into `target`, which must hold no rows; returns each table's count.
    /// `progress` hears each table once it is copied.
    public static func copy(
        sqlitePath: String, into target: PostgresStore, progress: @escaping @Sendable (TableCount) -> Void = { _ in }
    ) throws -> [TableCount] {
        var configuration = Configuration()
        configuration.readonly = true
        let source = try DatabaseQueue(path: sqlitePath, configuration: configuration)
        let migrated = try source.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }
        guard migrated.contains(where: { $0.hasPrefix("v20") }) else {
            throw MigrationError("\(sqlitePath) is not at SQLite schema v20: start this release's `serve` on it once, stop it, then migrate")
        }
        // One source snapshot for the whole copy, read table by table.
        return try source.read { db in
            try target.pool.write { pg in
                for table in tables {
                    let count = try await pg.scalar(Int.self, "SELECT count(*) AS n FROM \(table)") ?? 0
                    guard count == 0 else {
                        throw MigrationError("the target database already has rows in \(table): migrate into an empty database")
                    }
                }
                return ()
            }
            var counts: [TableCount] = []
            for table in tables {
                let identity = identities[table]
                let select = identity == "rowid" ? "SELECT rowid AS rowid, * FROM \(table) ORDER BY rowid" : "SELECT * FROM \(table)"
                let cursor = try Row.fetchCursor(db, sql: select)
                var columns: [String] = []
                var batch: [DatabaseValue] = []
                var batchCount = 0
                var copied = 0
                func flush() throws {
                    guard batchCount > 0 else { return }
                    let values = batch
                    let count = batchCount
                    let names = columns
                    batch.removeAll(keepingCapacity: true)
                    batchCount = 0
                    try target.pool.write { pg in try await insert(count, rows: values, columns: names, into: table, pg) }
                    copied += count
                }
                while let row = try cursor.next() {
                    if columns.isEmpty { columns = Array(row.columnNames) }
                    for column in columns { batch.append(row[column] as DatabaseValue) }
                    batchCount += 1
                    if batchCount == batchRows { try flush() }
                }
                try flush()
                if let identity {
                    try target.pool.write { pg in
                        try await pg.execute(
                            "SELECT setval(pg_get_serial_sequence('\(table)', '\(identity)'), coalesce(max(\(identity)), 0) + 1, false) FROM \(table)")
                    }
                }
                let count = TableCount(table: table, rows: copied)
                progress(count)
                counts.append(count)
            }
            return counts
        }
    }

    /// `count` rows of `columns.count` values each, row after row, in one INSERT.
    static func insert(_ count: Int, rows values: [DatabaseValue], columns: [String], into table: String, _ pg: PostgresSession)
        async throws
    {
        let names = columns.map { "\"\($0)\"" }.joined(separator: ", ")
        let tuple = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        let identity = identities[table] != nil ? " OVERRIDING SYSTEM VALUE" : ""
        try await pg.execute(
            "INSERT INTO \(table) (\(names))\(identity) VALUES " + Array(repeating: tuple, count: count).joined(separator: ", "),
            values)
    }

    public struct MigrationError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
