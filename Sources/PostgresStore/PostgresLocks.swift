import Foundation
import GRDB

/// Named locks held until the transaction ends, for the read-then-write methods whose
/// rows do not exist yet (a name to store, a session to open, a cache to save).
///
/// `SELECT … FOR UPDATE` locks rows that are there; it cannot stop two coordinators from
/// both finding no row and both inserting, nor both counting the same free places. A
/// transaction-level advisory lock on a name stands for "this job's artifacts" (or
/// sessions, or this scope's caches): the second taker waits for the first to commit, and
/// its next statement sees what the first wrote, as under SQLite's single writer. The
/// lifecycle never takes these, so it never waits on them. Names hash to 32 bits: two
/// names that collide only queue behind each other.
enum PostgresLocks {
    static func artifacts(ofJob jobID: String, _ db: PostgresSession) async throws {
        try await take("artifacts/" + jobID, db)
    }

    static func uploads(ofJob jobID: String, _ db: PostgresSession) async throws {
        try await take("artifact_uploads/" + jobID, db)
    }

    static func caches(ofScope scope: String, _ db: PostgresSession) async throws {
        try await take("caches/" + scope, db)
    }

    private static func take(_ name: String, _ db: PostgresSession) async throws {
        try await db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", .values("gantry." + name))
    }
}
