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
            let head = try Row.fetchOne(db, sql: "SELECT seq, at, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            let previousSeq: Int64 = head?["seq"] ?? 0
            let previousHash: Data = head?["hash"] ?? AuditRecord.genesisHash
            // Read leniently: a tampered time must not stop appends (verify reports it).
            let previousTime = head.flatMap { Date.fromDatabaseValue($0["at"]) }
            let time = previousTime.map { max($0, date) } ?? date
            let record = AuditRecord(event: event, at: time, seq: previousSeq + 1, previousHash: previousHash)
            try record.insert(db)
            return record
        }
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
            var sql = "SELECT * FROM audit_log WHERE seq >= ?"
            var arguments: StatementArguments = [lowestSeq]
            if let since {
                sql += " AND at >= ?"
                _ = arguments.append(contentsOf: [since])
            }
            if let actor {
                sql += " AND actor = ?"
                _ = arguments.append(contentsOf: [actor])
            }
            if let object {
                sql += " AND object = ?"
                _ = arguments.append(contentsOf: [object])
            }
            sql += " ORDER BY seq LIMIT ?"
            _ = arguments.append(contentsOf: [AuditQuery.clamp(limit)])
            return try AuditRecord.fetchAll(db, sql: sql, arguments: arguments)
        }
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
                try Row.fetchAll(
                    db, sql: "SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                    arguments: [afterSeq, AuditChainVerifier.batchSize])
            }
            for row in rows {
                let seq: Int64 = row["seq"]
                do {
                    verifier.feed(.success(try AuditRecord(row: row)))
                } catch {
                    verifier.feed(.failure(AuditRowError(seq: seq, reason: "\(error)")))
                }
                afterSeq = seq
            }
            if rows.count < AuditChainVerifier.batchSize { break }
        }
        return verifier.finish()
    }
}
