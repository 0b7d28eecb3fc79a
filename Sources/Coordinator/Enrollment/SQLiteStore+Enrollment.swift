import Foundation
import GRDB

/// `EnrollmentStore` on the tables of migrations v5 and v6 (`join_tokens`, `enrollments`,
/// `revoked_hosts`). Every read is by primary key (or `enrollments_by_host` for a
/// forget), so a handshake costs tens of microseconds. The coordinator and
/// `gantry-coordinator join-token` open the same file; SQLite's locking (WAL, busy
/// timeout) orders their writes.
extension SQLiteStore: EnrollmentStore {
    public func insertJoinToken(_ token: JoinToken) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO join_tokens (id, hash, labels, description, created_at, expires_at, uses_left, revoked_at, host)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    token.id, token.secretHash, try Self.encode(token.labels), token.description, token.createdAt,
                    token.expiresAt, token.usesLeft, token.revokedAt, token.host,
                ])
        }
    }

    public func joinToken(id: String) throws -> JoinToken? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM join_tokens WHERE id = ?", arguments: [id]).map(Self.joinToken)
        }
    }

    public func joinTokens() throws -> [JoinToken] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM join_tokens ORDER BY created_at DESC, id").map(Self.joinToken)
        }
    }

    public func revokeJoinToken(id: String, at: Date) throws -> Bool {
        try database.write { db in
            try db.execute(
                sql: "UPDATE join_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", arguments: [at, id])
            return db.changesCount > 0
        }
    }

    public func redeemJoinToken(id: String, now: Date, recording enrollment: EnrollmentRecord) throws -> EnrollmentRefusal? {
        try database.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM join_tokens WHERE id = ?", arguments: [id]) else {
                return .unusableToken("join token \(id) does not exist (any more)")
            }
            let token = try Self.joinToken(row)
            if let problem = token.problem(now: now) { return .unusableToken(problem) }
            if let refusal = try Self.nameRefusal(host: enrollment.host, token: token, now: now, db) { return refusal }
            try db.execute(
                sql: "UPDATE join_tokens SET uses_left = uses_left - 1 WHERE id = ? AND uses_left IS NOT NULL", arguments: [id])
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
            try db.execute(
                sql: "UPDATE enrollments SET revoked_at = ? WHERE host = ? AND revoked_at IS NULL", arguments: [at, host])
            let marked = db.changesCount
            try db.execute(
                sql: """
                    INSERT INTO revoked_hosts (host, at, by) VALUES (?, ?, ?)
                    ON CONFLICT (host) DO UPDATE SET at = excluded.at, by = excluded.by
                    """,
                arguments: [host, at, actor])
            return marked
        }
    }

    // MARK: - Rows

    /// `TrustPolicy.enrollmentRefusal` on the name's rows: two reads by `host`
    /// (`enrollments_by_host`, `revoked_hosts`' key), inside the caller's transaction.
    static func nameRefusal(host: String, token: JoinToken?, now: Date, _ db: Database) throws -> EnrollmentRefusal? {
        let liveUntil = try Date.fetchOne(
            db, sql: "SELECT max(not_after) FROM enrollments WHERE host = ? AND revoked_at IS NULL AND not_after > ?",
            arguments: [host, now])
        return TrustPolicy.enrollmentRefusal(
            host: host, token: token, liveUntil: liveUntil, forgottenAt: try hostRevokedAt(host, db))
    }

    static func insert(_ enrollment: EnrollmentRecord, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO enrollments (serial, host, labels, join_token_id, issued_at, not_after, renewed_from, revoked_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                enrollment.serial, enrollment.host, try encode(enrollment.labels), enrollment.joinTokenID, enrollment.issuedAt,
                enrollment.notAfter, enrollment.renewedFrom, enrollment.revokedAt,
            ])
    }

    static func enrollment(serial: String, _ db: Database) throws -> EnrollmentRecord? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM enrollments WHERE serial = ?", arguments: [serial]) else {
            return nil
        }
        return EnrollmentRecord(
            serial: row["serial"], host: row["host"], labels: try decode(row["labels"]), joinTokenID: row["join_token_id"],
            issuedAt: row["issued_at"], notAfter: row["not_after"], renewedFrom: row["renewed_from"],
            revokedAt: row["revoked_at"])
    }

    static func hostRevokedAt(_ host: String, _ db: Database) throws -> Date? {
        try Date.fetchOne(db, sql: "SELECT at FROM revoked_hosts WHERE host = ?", arguments: [host])
    }

    static func joinToken(_ row: Row) throws -> JoinToken {
        JoinToken(
            id: row["id"], secretHash: row["hash"], labels: try decode(row["labels"]), description: row["description"],
            createdAt: row["created_at"], expiresAt: row["expires_at"], usesLeft: row["uses_left"], revokedAt: row["revoked_at"],
            host: row["host"])
    }

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
