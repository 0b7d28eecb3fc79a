import ArgumentParser
import GantryCoordinator
import GantryPostgresStore
import Logging

/// The store a command works on: `--database` if given, else the database `init`
/// recorded in the state directory, else the SQLite file in it. Every command that reads
/// or writes the database opens it here, so `token`, `audit` and the rest work on
/// PostgreSQL exactly as `serve` does.
enum StoreOpener {
    static func open(_ state: CoordinatorStateDirectory, database: String? = nil, logger: Logger = Logger(label: "gantry-coordinator"))
        throws -> any GantryStore
    {
        guard let url = try database ?? state.databaseURL() else { return try SQLiteStore(path: state.database) }
        guard PostgresLocation.isPostgresURL(url) else {
            throw ValidationError("--database: \(url) is not a postgres:// URL (leave it out for the SQLite file in --state)")
        }
        return try PostgresStore(url: url, logger: logger)
    }
}
