import Foundation
import GRDB

/// Advisory locks the stores take inside a transaction (`pg_advisory_xact_lock`), released
/// by its `COMMIT` or `ROLLBACK`. They order writers that read before they write where no
/// row exists yet to lock with `SELECT … FOR UPDATE`: a chain's next link, a host name's
/// first enrollment, a pipeline's next meta-data key, a job's artifacts and upload
/// sessions, a scope's caches. Coordinators sharing the database take the same keys, so
/// they take turns there as one process's threads do. The lifecycle never takes these, so
/// it never waits on them.
///
/// A single `bigint` key and a pair of `integer` keys are separate spaces on the server,
/// so the per-name locks (a namespace and `hashtext(name)`) never meet the fixed ones.
/// Two names with the same hash only wait for each other, which is harmless.
enum PostgresLocks {
    /// The audit chain's head: "gantryA" in ASCII, distinct from `PostgresMigrator.lockKey`.
    static let auditChain: Int64 = 0x67_61_6E_74_72_79_41

    /// Per host name, with `hashtext(host)`: "genh" in ASCII.
    static let enrollmentHost: Int32 = 0x67_65_6E_68
    /// Per pipeline, with `hashtext(pipeline_id)`: "gmdp" in ASCII.
    static let metaDataPipeline: Int32 = 0x67_6D_64_70
    /// Per job's artifacts, upload sessions, and per cache scope: "gart", "gupl", "gcac".
    static let jobArtifacts: Int32 = 0x67_61_72_74
    static let jobUploads: Int32 = 0x67_75_70_6C
    static let cacheScope: Int32 = 0x67_63_61_63

    static func artifacts(ofJob jobID: String, _ db: PostgresSession) async throws {
        try await db.lock(jobArtifacts, jobID)
    }

    static func uploads(ofJob jobID: String, _ db: PostgresSession) async throws {
        try await db.lock(jobUploads, jobID)
    }

    static func caches(ofScope scope: String, _ db: PostgresSession) async throws {
        try await db.lock(cacheScope, scope)
    }
}

extension PostgresSession {
    /// Waits for, then holds until the transaction ends, the lock `namespace` and `name` make.
    func lock(_ namespace: Int32, _ name: String) async throws {
        try await execute("SELECT pg_advisory_xact_lock(\(namespace), hashtext(?::text))", .values(name))
    }
}
