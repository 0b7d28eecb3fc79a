import Foundation
import GRDB
import GantryCoordinator

/// `EnrollmentStore` with SQLite's statements. SQLite runs one writer at a time, so its
/// check-then-write transactions cannot interleave; at READ COMMITTED they could, and
/// coordinators sharing the database would then enroll one name twice, spend a single-use
/// token twice or renew a certificate its host's forget missed. So every transaction
/// that checks a name first takes that name's advisory lock
/// (`PostgresLocks.enrollmentHost`), and a redemption locks its token's row: checks and
/// writes on one name, or one token, take turns across processes.
extension PostgresStore: EnrollmentStore {
    public func insertJoinToken(_ token: JoinToken) throws {
        let arguments = try SQLiteStore.joinTokenArguments(token)
        try pool.write { db in _ = try await db.execute(SQLiteStore.insertJoinTokenSQL, arguments) }
    }

    public func joinToken(id: String) throws -> JoinToken? {
        try pool.read { db in try await db.rows(SQLiteStore.joinTokenSQL, .values(id)).first.map(SQLiteStore.joinToken) }
    }

    public func joinTokens() throws -> [JoinToken] {
        try pool.read { db in try await db.rows(SQLiteStore.joinTokensSQL).map(SQLiteStore.joinToken) }
    }

    public func revokeJoinToken(id: String, at: Date) throws -> Bool {
        try pool.write { db in try await db.execute(SQLiteStore.revokeJoinTokenSQL, .values(at, id)) > 0 }
    }

    public func redeemJoinToken(id: String, now: Date, recording enrollment: EnrollmentRecord) throws -> EnrollmentRefusal? {
        let arguments = try SQLiteStore.enrollmentArguments(enrollment)
        return try pool.write { db in
            try await db.lock(PostgresLocks.enrollmentHost, enrollment.host)
            // Locked until COMMIT: a racing redemption reads `uses_left` after this one's use.
            guard let row = try await db.rows(SQLiteStore.joinTokenSQL + " FOR UPDATE", .values(id)).first else {
                return .unusableToken("join token \(id) does not exist (any more)")
            }
            let token = try SQLiteStore.joinToken(row)
            if let problem = token.problem(now: now) { return .unusableToken(problem) }
            if let refusal = try await Self.nameRefusal(host: enrollment.host, token: token, now: now, db) { return refusal }
            try await db.execute(SQLiteStore.takeJoinTokenUseSQL, .values(id))
            try await db.execute(SQLiteStore.insertEnrollmentSQL, arguments)
            return nil
        }
    }

    public func recordEnrollment(_ enrollment: EnrollmentRecord, now: Date) throws -> EnrollmentRefusal? {
        let arguments = try SQLiteStore.enrollmentArguments(enrollment)
        return try pool.write { db in
            try await db.lock(PostgresLocks.enrollmentHost, enrollment.host)
            if let refusal = try await Self.nameRefusal(host: enrollment.host, token: nil, now: now, db) { return refusal }
            try await db.execute(SQLiteStore.insertEnrollmentSQL, arguments)
            return nil
        }
    }

    public func recordRenewal(_ renewal: EnrollmentRecord) throws -> TrustPolicy.Refusal? {
        let arguments = try SQLiteStore.enrollmentArguments(renewal)
        return try pool.write { db in
            // The same lock as `revokeHost`: a forget either sees this certificate or
            // commits before this check reads it.
            try await db.lock(PostgresLocks.enrollmentHost, renewal.host)
            var previous: EnrollmentRecord?
            if let serial = renewal.renewedFrom {
                previous = try await db.rows(SQLiteStore.enrollmentSQL, .values(serial)).first.map(SQLiteStore.enrollmentRecord)
            }
            let hostRevokedAt = try await db.scalar(Date.self, SQLiteStore.hostRevokedAtSQL, .values(renewal.host))
            if let refusal = TrustPolicy.revocation(host: renewal.host, enrollment: previous, hostRevokedAt: hostRevokedAt) {
                return refusal
            }
            try await db.execute(SQLiteStore.insertEnrollmentSQL, arguments)
            return nil
        }
    }

    public func enrollment(serial: String) throws -> EnrollmentRecord? {
        try pool.read { db in try await db.rows(SQLiteStore.enrollmentSQL, .values(serial)).first.map(SQLiteStore.enrollmentRecord) }
    }

    public func hostRevokedAt(_ host: String) throws -> Date? {
        try pool.read { db in try await db.scalar(Date.self, SQLiteStore.hostRevokedAtSQL, .values(host)) }
    }

    public func revokeHost(_ host: String, at: Date, by actor: String) throws -> Int {
        try pool.write { db in
            try await db.lock(PostgresLocks.enrollmentHost, host)
            let marked = try await db.execute(SQLiteStore.revokeHostEnrollmentsSQL, .values(at, host))
            try await db.execute(SQLiteStore.recordHostRevokedSQL, .values(host, at, actor))
            return marked
        }
    }

    /// `TrustPolicy.enrollmentRefusal` on the name's rows, inside the caller's transaction
    /// (which holds the name's lock).
    static func nameRefusal(host: String, token: JoinToken?, now: Date, _ db: PostgresSession) async throws -> EnrollmentRefusal? {
        let liveUntil = try await db.scalar(Date.self, SQLiteStore.liveUntilSQL, .values(host, now))
        let forgottenAt = try await db.scalar(Date.self, SQLiteStore.hostRevokedAtSQL, .values(host))
        return TrustPolicy.enrollmentRefusal(host: host, token: token, liveUntil: liveUntil, forgottenAt: forgottenAt)
    }
}
