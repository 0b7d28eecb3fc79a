import Foundation
import GRDB

extension SQLiteStore: AuditStore {
    /// Appends in one write transaction after the head. The record's time is never before
    /// its predecessor's (a clock stepped back, or two requests racing to the writer, keep
    /// the later seq at the same millisecond), so time order is chain order and `since`
    /// can find its first record by a binary search on `seq`.
    @discardableResult
    public func appendAudit(_ event: AuditEvent, at date: Date) throws -> AuditRecord {
        try database.write { db in
            let record = Self.auditRecord(event, at: date, after: try Row.fetchOne(db, sql: Self.auditHeadSQL))
            try record.insert(db)
            return record
        }
    }

    /// The chain's last record: `seq`, `at` and `hash`, or no row.
    public static let auditHeadSQL = "SELECT seq, at, hash FROM audit_log ORDER BY seq DESC LIMIT 1"

    /// The record that follows `head` (a row of `auditHeadSQL`, nil for an empty chain).
    public static func auditRecord(_ event: AuditEvent, at date: Date, after head: Row?) -> AuditRecord {
        let previousSeq: Int64 = head?["seq"] ?? 0
        let previousHash: Data = head?["hash"] ?? AuditRecord.genesisHash
        // Read leniently: a tampered time must not stop appends (verify reports it).
        let previousTime = head.flatMap { Date.fromDatabaseValue($0["at"]) }
        let time = previousTime.map { max($0, date) } ?? date
        return AuditRecord(event: event, at: time, seq: previousSeq + 1, previousHash: previousHash)
    }

    public func auditRecords(
        since: Date?, actor: String?, object: String?, afterSeq: Int64?, limit: Int
    ) throws -> [AuditRecord] {
        try database.read { db in
            var lowestSeq = max(afterSeq ?? 0, 0) + 1
            if let since {
                guard let first = try Self.firstAuditSeq(atOrAfter: since, db) else { return [] }
                lowestSeq = max(lowestSeq, first)
            }
            let query = Self.auditRecordsQuery(lowestSeq: lowestSeq, since: since, actor: actor, object: object, limit: limit)
            return try AuditRecord.fetchAll(db, sql: query.sql, arguments: StatementArguments(query.arguments))
        }
    }

    /// `auditRecords` from `lowestSeq` on (where `since` starts, found by `firstAuditSeq`).
    public static func auditRecordsQuery(
        lowestSeq: Int64, since: Date?, actor: String?, object: String?, limit: Int
    ) -> (sql: String, arguments: [DatabaseValue]) {
        var sql = "SELECT * FROM audit_log WHERE seq >= ?"
        var arguments: [DatabaseValue] = [lowestSeq.databaseValue]
        if let since {
            sql += " AND at >= ?"
            arguments.append(since.databaseValue)
        }
        if let actor {
            sql += " AND actor = ?"
            arguments.append(actor.databaseValue)
        }
        if let object {
            sql += " AND object = ?"
            arguments.append(object.databaseValue)
        }
        sql += " ORDER BY seq LIMIT ?"
        arguments.append(AuditQuery.clamp(limit).databaseValue)
        return (sql, arguments)
    }

    /// The lowest seq whose time is at or after `date`, by at most 64 primary-key lookups
    /// (times never decrease along the chain, see `appendAudit`); nil if there is none.
    static func firstAuditSeq(atOrAfter date: Date, _ db: Database) throws -> Int64? {
        func record(atOrAfter seq: Int64) throws -> (seq: Int64, at: Date)? {
            guard let row = try Row.fetchOne(db, sql: "SELECT seq, at FROM audit_log WHERE seq >= ? ORDER BY seq LIMIT 1", arguments: [seq])
            else { return nil }
            // A tampered time reads as the distant past; verify reports the record itself.
            let at = Date.fromDatabaseValue(row["at"]) ?? .distantPast
            return (row["seq"], at)
        }
        guard let last = try Row.fetchOne(db, sql: "SELECT seq, at FROM audit_log ORDER BY seq DESC LIMIT 1"),
            let lastAt = Date.fromDatabaseValue(last["at"]), lastAt >= date
        else { return nil }
        // Search the smallest s whose first record at or after it is late enough; every s
        // in middle...found.seq maps to the same record, so a miss skips past all of them.
        var low: Int64 = 1
        var high: Int64 = last["seq"]
        for _ in 0..<64 where low < high {
            let middle = low + (high - low) / 2
            guard let found = try record(atOrAfter: middle) else { break }
            if found.at >= date {
                high = middle
            } else {
                low = found.seq + 1
            }
        }
        return (try record(atOrAfter: low)).map(\.seq)
    }

    public func verifyAudit(anchor: AuditAnchor?) throws -> AuditVerification {
        var verifier = AuditChainVerifier(anchor: anchor)
        var afterSeq: Int64 = 0
        // Each batch is its own short read, so a long verification never pins an old WAL
        // snapshot; the chain only grows, so batches read at different times still join.
        while !verifier.isBroken {
            let rows = try database.read { db in
                Self.auditLinks(try Row.fetchAll(db, sql: Self.auditBatchSQL, arguments: [afterSeq, AuditChainVerifier.batchSize]))
            }
            for row in rows {
                verifier.feed(row.link)
                afterSeq = row.seq
            }
            if rows.count < AuditChainVerifier.batchSize { break }
        }
        return verifier.finish()
    }

    /// Parameters: the seq to start after, `AuditChainVerifier.batchSize`.
    public static let auditBatchSQL = "SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"

    /// A batch of `auditBatchSQL` as the verifier reads it: a row that does not decode is a
    /// broken link at its seq, not an error of the walk.
    public static func auditLinks(_ rows: [Row]) -> [(seq: Int64, link: Result<AuditRecord, AuditRowError>)] {
        rows.map { row in
            let seq: Int64 = row["seq"]
            do {
                return (seq, .success(try AuditRecord(row: row)))
            } catch {
                return (seq, .failure(AuditRowError(seq: seq, reason: "\(error)")))
            }
        }
    }
}
