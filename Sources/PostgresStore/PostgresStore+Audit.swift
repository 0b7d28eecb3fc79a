import Foundation
import GRDB
import GantryCoordinator

extension PostgresStore: AuditStore {
    /// Appends after the head, holding the advisory lock `PostgresLocks.auditChain` until
    /// COMMIT. Each record hashes its predecessor, so two appends that read the same head
    /// would fork the chain (or one would fail on the duplicate `seq`), and at READ
    /// COMMITTED nothing else stops them: there is no row to lock before the new one
    /// exists. The lock makes appends from every coordinator sharing the database take
    /// turns, each reading the head its predecessor committed. It is the first statement,
    /// so the head read after it is already the committed one.
    @discardableResult
    public func appendAudit(_ event: AuditEvent, at date: Date) throws -> AuditRecord {
        try pool.write { db in
            try await db.execute("SELECT pg_advisory_xact_lock(\(PostgresLocks.auditChain))")
            let head = try await db.rows(SQLiteStore.auditHeadSQL).first
            let record = SQLiteStore.auditRecord(event, at: date, after: head)
            try await db.insert(record)
            return record
        }
    }

    public func auditRecords(
        since: Date?, actor: String?, object: String?, afterSeq: Int64?, limit: Int
    ) throws -> [AuditRecord] {
        try pool.read { db in
            var lowestSeq = max(afterSeq ?? 0, 0) + 1
            if let since {
                guard let first = try await Self.firstAuditSeq(atOrAfter: since, db) else { return [] }
                lowestSeq = max(lowestSeq, first)
            }
            let query = SQLiteStore.auditRecordsQuery(lowestSeq: lowestSeq, since: since, actor: actor, object: object, limit: limit)
            return try await db.fetchAll(AuditRecord.self, query.sql, query.arguments)
        }
    }

    /// SQLite's binary search on `seq` (`SQLiteStore.firstAuditSeq`): `audit_log` has no
    /// index on `at`, and times never decrease along the chain, so at most 64 primary-key
    /// lookups find where `since` starts.
    static func firstAuditSeq(atOrAfter date: Date, _ db: PostgresSession) async throws -> Int64? {
        func record(atOrAfter seq: Int64) async throws -> (seq: Int64, at: Date)? {
            guard let row = try await db.rows("SELECT seq, at FROM audit_log WHERE seq >= ? ORDER BY seq LIMIT 1", .values(seq)).first
            else { return nil }
            return (row["seq"], Date.fromDatabaseValue(row["at"]) ?? .distantPast)
        }
        guard let last = try await db.rows(SQLiteStore.auditHeadSQL).first,
            let lastAt = Date.fromDatabaseValue(last["at"]), lastAt >= date
        else { return nil }
        var low: Int64 = 1
        var high: Int64 = last["seq"]
        for _ in 0..<64 where low < high {
            let middle = low + (high - low) / 2
            guard let found = try await record(atOrAfter: middle) else { break }
            if found.at >= date {
                high = middle
            } else {
                low = found.seq + 1
            }
        }
        return try await record(atOrAfter: low).map(\.seq)
    }

    /// One short read per batch, as on SQLite: the chain only grows, so batches read at
    /// different times still join.
    public func verifyAudit(anchor: AuditAnchor?) throws -> AuditVerification {
        var verifier = AuditChainVerifier(anchor: anchor)
        var afterSeq: Int64 = 0
        while !verifier.isBroken {
            let start = afterSeq
            let rows = try pool.read { db in
                SQLiteStore.auditLinks(try await db.rows(SQLiteStore.auditBatchSQL, .values(start, AuditChainVerifier.batchSize)))
            }
            for row in rows {
                verifier.feed(row.link)
                afterSeq = row.seq
            }
            if rows.count < AuditChainVerifier.batchSize { break }
        }
        return verifier.finish()
    }
}
