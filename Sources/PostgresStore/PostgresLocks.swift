/// Advisory locks the stores take inside a transaction (`pg_advisory_xact_lock`), released
/// by its `COMMIT` or `ROLLBACK`. They order writers that read before they write where no
/// row exists yet to lock with `SELECT … FOR UPDATE`: a chain's next link, a host name's
/// first enrollment, a pipeline's next meta-data key. Coordinators sharing the database
/// take the same keys, so they take turns there as one process's threads do.
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
}

extension PostgresSession {
    /// Waits for, then holds until the transaction ends, the lock `namespace` and `name` make.
    func lock(_ namespace: Int32, _ name: String) async throws {
        try await execute("SELECT pg_advisory_xact_lock(\(namespace), hashtext(?::text))", .values(name))
    }
}
