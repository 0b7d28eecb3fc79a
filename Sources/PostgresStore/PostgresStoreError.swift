import Foundation

/// Why the PostgreSQL back end refused or could not finish a call; each says what to do.
public enum PostgresStoreError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The URL given to `--database` cannot be used.
    case badURL(String)
    /// The database could not be reached or migrated at start.
    case unavailable(String, String)
    /// The database did not answer in time (down, restarting, or every connection busy).
    case timedOut(seconds: Double)
    /// The database's schema is newer than this binary knows: a newer coordinator ran on it.
    case schemaTooNew(applied: [String])
    /// A write that must change exactly one row changed none: the row does not exist.
    case rowNotFound(table: String, key: String)
    /// A leader's commit found the lease gone: another coordinator leads now.
    case notLeader(String, Int64)
    /// A value read back has a type this store never writes there.
    case unexpectedColumnType(column: String, type: String)

    public var description: String {
        switch self {
        case .badURL(let why):
            return "bad database URL: \(why) (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|require|verify-full], or postgres:///DATABASE?host=/socket/dir)"
        case .unavailable(let location, let why):
            return "cannot use the database at \(location): \(why)"
        case .timedOut(let seconds):
            return "PostgreSQL did not answer within \(Int(seconds)) s; check that it runs and accepts connections"
        case .schemaTooNew(let applied):
            return "the database has migrations this coordinator does not know (\(applied.joined(separator: ", "))); run the newer gantry-coordinator, or restore a backup"
        case .rowNotFound(let table, let key):
            return "no row in \(table) for \(key)"
        case .notLeader(let holder, let epoch):
            return "this coordinator (\(holder), epoch \(epoch)) no longer holds the leader lease; nothing of this commit was stored"
        case .unexpectedColumnType(let column, let type):
            return "column \(column) has type \(type), which the store does not read"
        }
    }
}
