import ArgumentParser
import Foundation
import GantryCoordinator
import GantryPostgresStore
import Logging

/// `gantry-coordinator migrate-store`: moves a coordinator from its SQLite file to
/// PostgreSQL, then records the database in the state directory so `serve` uses it.
///
/// Offline, like `rotate-key`: it takes the secrets key's exclusive lock, which a running
/// `serve` holds shared, so nothing writes the SQLite file while it is copied. The SQLite
/// file is left as it was: it is the rollback.
struct MigrateStore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate-store",
        abstract: "Copy the SQLite database into an empty PostgreSQL database (stop `serve` first).")

    @Option(help: "State directory created by `init`.") var state: String
    @Option(help: "The empty PostgreSQL database: postgres://USER@HOST[:PORT]/DATABASE (password: PGPASSWORD).")
    var to: String

    func validate() throws {
        let location: PostgresLocation
        do { location = try PostgresLocation(url: to, environment: [:]) } catch { throw ValidationError("--to: \(error)") }
        if location.password != nil {
            throw ValidationError("--to: leave the password out of the URL (it is recorded in coordinator.json); set PGPASSWORD")
        }
    }

    func run() throws {
        let directory = CoordinatorStateDirectory(path: state)
        guard directory.isInitialized, FileManager.default.fileExists(atPath: directory.database) else {
            throw ValidationError("no SQLite database in \(state): pass the --state directory `serve` uses")
        }
        if let recorded = try directory.databaseURL() {
            throw ValidationError("\(state) already uses \(recorded)")
        }
        let lock = try SecretKeyFiles(state: directory).lock(exclusive: true)
        defer { close(lock) }
        let target = try PostgresStore(url: to, logger: Logger(label: "gantry-coordinator"))
        defer { target.pool.shutdown() }
        let started = ContinuousClock.now
        let counts = try SQLiteToPostgres.copy(sqlitePath: directory.database, into: target) { count in
            print("  \(count.table): \(count.rows) row(s)")
        }
        let verification = try target.verifyAudit(anchor: nil)
        guard verification.ok else {
            throw ValidationError("the copied audit log does not verify (\(verification.summary)); \(state) still uses SQLite")
        }
        try directory.record(database: to)
        let total = counts.reduce(0) { $0 + $1.rows }
        print(
            """
            Copied \(total) row(s) into \(target.location.redacted) in \(ContinuousClock.now - started); \
            \(verification.summary).
            \(directory.metadata) now names the database: start `serve` again. \(directory.database) is unchanged (keep it until you are sure).
            """)
    }
}
