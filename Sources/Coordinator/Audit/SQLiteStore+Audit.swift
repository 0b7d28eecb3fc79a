import Foundation
import GRDB

extension SQLiteStore: AuditStore {
    @discardableResult
    public func appendAudit(_ event: AuditEvent, at date: Date) throws -> AuditRecord {
        try database.write { db in
            let head = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            let previousSeq: Int64 = head?["seq"] ?? 0
            let previousHash: Data = head?["hash"] ?? AuditRecord.genesisHash
            let record = AuditRecord(event: event, at: date, seq: previousSeq + 1, previousHash: previousHash)
            try record.insert(db)
            return record
        }
    }
}
