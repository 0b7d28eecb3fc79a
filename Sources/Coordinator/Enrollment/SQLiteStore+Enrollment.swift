import Foundation
import GRDB

/// `EnrollmentStore` on the tables of migrations v5 and v6 (`join_tokens`, `enrollments`,
/// `revoked_hosts`). Every read is by primary key (or `enrollments_by_host` for a
/// forget), so a handshake costs tens of microseconds. The coordinator and
/// `gantry-coordinator join-token` open the same file; SQLite's locking (WAL, busy
/// timeout) orders their writes.
extension SQLiteStore: EnrollmentStore {
    public func insertJoinToken(_ token: JoinToken) throws {
        let arguments = try Self.joinTokenArguments(token)
        try database.write { db in try db.execute(sql: Self.insertJoinTokenSQL, arguments: StatementArguments(arguments)) }
    }

    public func joinToken(id: String) throws -> JoinToken? {
        try database.read { db in
            try Row.fetchOne(db, sql: Self.joinTokenSQL, arguments: [id]).map(Self.joinToken)
        }
    }

    public func joinTokens() throws -> [JoinToken] {
        try database.read { db in
            try Row.fetchAll(db, sql: Self.joinTokensSQL).map(Self.joinToken)
        }
    }

    public func revokeJoinToken(id: String, at: Date) throws -> Bool {
        try database.write { db in
            try db.execute(sql: Self.revokeJoinTokenSQL, arguments: [at, id])
            return db.changesCount > 0
        }
    }

    public func redeemJoinToken(id: String, now: Date, recording enrollment: EnrollmentRecord) throws -> EnrollmentRefusal? {
        try database.write { db in
            guard let row = try Row.fetchOne(db, sql: Self.joinTokenSQL, arguments: [id]) else {
                return .unusableToken("join token \(id) does not exist (any more)")
            }
            let token = try Self.joinToken(row)
            if let problem = token.problem(now: now) { return .unusableToken(problem) }
            if let refusal = try Self.nameRefusal(host: enrollment.host, token: token, now: now, db) { return refusal }
            try db.execute(sql: Self.takeJoinTokenUseSQL, arguments: [id])
            try Self.insert(enrollment, db)
            return nil
        }
    }

    public func recordEnrollment(_ enrollment: EnrollmentRecord, now: Date) throws -> EnrollmentRefusal? {
        try database.write { db in
            if let refusal = try Self.nameRefusal(host: enrollment.host, token: nil, now: now, db) { return refusal }
            try Self.insert(enrollment, db)
            return nil
        }
    }

    public func recordRenewal(_ renewal: EnrollmentRecord) throws -> TrustPolicy.Refusal? {
        try database.write { db in
            let previous = try renewal.renewedFrom.flatMap { try Self.enrollment(serial: $0, db) }
            let hostRevokedAt = try Self.hostRevokedAt(renewal.host, db)
            if let refusal = TrustPolicy.revocation(host: renewal.host, enrollment: previous, hostRevokedAt: hostRevokedAt) {
                return refusal
            }
            try Self.insert(renewal, db)
            return nil
        }
    }

    public func enrollment(serial: String) throws -> EnrollmentRecord? {
        try database.read { db in try Self.enrollment(serial: serial, db) }
    }

    public func hostRevokedAt(_ host: String) throws -> Date? {
        try database.read { db in try Self.hostRevokedAt(host, db) }
    }

    public func revokeHost(_ host: String, at: Date, by actor: String) throws -> Int {
        try database.write { db in
            try db.execute(sql: Self.revokeHostEnrollmentsSQL, arguments: [at, host])
            let marked = db.changesCount
            try db.execute(sql: Self.recordHostRevokedSQL, arguments: [host, at, actor])
            return marked
        }
    }

    // MARK: - Rows

    /// `TrustPolicy.enrollmentRefusal` on the name's rows: two reads by `host`
    /// (`enrollments_by_host`, `revoked_hosts`' key), inside the caller's transaction.
    static func nameRefusal(host: String, token: JoinToken?, now: Date, _ db: Database) throws -> EnrollmentRefusal? {
        let liveUntil = try Date.fetchOne(db, sql: liveUntilSQL, arguments: [host, now])
        return TrustPolicy.enrollmentRefusal(
            host: host, token: token, liveUntil: liveUntil, forgottenAt: try hostRevokedAt(host, db))
    }

    static func insert(_ enrollment: EnrollmentRecord, _ db: Database) throws {
        try db.execute(sql: insertEnrollmentSQL, arguments: StatementArguments(try enrollmentArguments(enrollment)))
    }

    static func enrollment(serial: String, _ db: Database) throws -> EnrollmentRecord? {
        try Row.fetchOne(db, sql: enrollmentSQL, arguments: [serial]).map(enrollmentRecord)
    }

    public static func enrollmentRecord(_ row: Row) throws -> EnrollmentRecord {
        EnrollmentRecord(
            serial: row["serial"], host: row["host"], labels: try decode(row["labels"]), joinTokenID: row["join_token_id"],
            issuedAt: row["issued_at"], notAfter: row["not_after"], renewedFrom: row["renewed_from"],
            revokedAt: row["revoked_at"])
    }

    static func hostRevokedAt(_ host: String, _ db: Database) throws -> Date? {
        try Date.fetchOne(db, sql: hostRevokedAtSQL, arguments: [host])
    }

    public static func joinToken(_ row: Row) throws -> JoinToken {
        JoinToken(
            id: row["id"], secretHash: row["hash"], labels: try decode(row["labels"]), description: row["description"],
            createdAt: row["created_at"], expiresAt: row["expires_at"], usesLeft: row["uses_left"], revokedAt: row["revoked_at"],
            host: row["host"])
    }

    // MARK: - Statements every back end runs

    public static let joinTokenSQL = "SELECT * FROM join_tokens WHERE id = ?"
    public static let joinTokensSQL = "SELECT * FROM join_tokens ORDER BY created_at DESC, id"
    /// Parameters: the time, the token's id. Keeps an earlier revocation's time.
    public static let revokeJoinTokenSQL = "UPDATE join_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?"
    /// Parameter: the token's id. A token without a limit (`uses_left` NULL) stays unlimited.
    public static let takeJoinTokenUseSQL = "UPDATE join_tokens SET uses_left = uses_left - 1 WHERE id = ? AND uses_left IS NOT NULL"
    public static let insertJoinTokenSQL = """
        INSERT INTO join_tokens (id, hash, labels, description, created_at, expires_at, uses_left, revoked_at, host)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    /// `insertJoinTokenSQL`'s parameters, in order.
    public static func joinTokenArguments(_ token: JoinToken) throws -> [DatabaseValue] {
        let values: [(any DatabaseValueConvertible)?] = [
            token.id, token.secretHash, try encode(token.labels), token.description, token.createdAt,
            token.expiresAt, token.usesLeft, token.revokedAt, token.host,
        ]
        return values.map { $0?.databaseValue ?? .null }
    }

    public static let enrollmentSQL = "SELECT * FROM enrollments WHERE serial = ?"
    public static let insertEnrollmentSQL = """
        INSERT INTO enrollments (serial, host, labels, join_token_id, issued_at, not_after, renewed_from, revoked_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """

    /// `insertEnrollmentSQL`'s parameters, in order.
    public static func enrollmentArguments(_ enrollment: EnrollmentRecord) throws -> [DatabaseValue] {
        let values: [(any DatabaseValueConvertible)?] = [
            enrollment.serial, enrollment.host, try encode(enrollment.labels), enrollment.joinTokenID, enrollment.issuedAt,
            enrollment.notAfter, enrollment.renewedFrom, enrollment.revokedAt,
        ]
        return values.map { $0?.databaseValue ?? .null }
    }

    /// Parameters: the host, now. When the name's last live certificate expires, or NULL.
    public static let liveUntilSQL = "SELECT max(not_after) FROM enrollments WHERE host = ? AND revoked_at IS NULL AND not_after > ?"
    /// Parameter: the host.
    public static let hostRevokedAtSQL = "SELECT at FROM revoked_hosts WHERE host = ?"
    /// Parameters: the time, the host.
    public static let revokeHostEnrollmentsSQL = "UPDATE enrollments SET revoked_at = ? WHERE host = ? AND revoked_at IS NULL"
    /// Parameters: the host, the time, the actor.
    public static let recordHostRevokedSQL = """
        INSERT INTO revoked_hosts (host, at, by) VALUES (?, ?, ?)
        ON CONFLICT (host) DO UPDATE SET at = excluded.at, by = excluded.by
        """

    /// Patterns as a JSON list of their text (`["queue=deploy","os=*"]`).
    static func encode(_ patterns: [LabelPattern]) throws -> String {
        String(decoding: try JSONEncoder().encode(patterns.map(\.description)), as: UTF8.self)
    }

    /// Parsed with the operators' rules; a row that does not parse is an error, never
    /// "allows everything".
    static func decode(_ json: String) throws -> [LabelPattern] {
        let texts = try JSONDecoder().decode([String].self, from: Data(json.utf8))
        return try texts.map { text throws(LabelPatternError) in try LabelPattern(parsing: text) }
    }
}
