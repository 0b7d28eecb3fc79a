import Foundation

/// Where audit records are kept: append-only, hash-chained (see `AuditRecord`).
///
/// `appendAudit` reads the chain's head and writes the next record in one transaction,
/// so concurrent appends (from several HTTP requests, or a `gantry-coordinator` command
/// on the host while `serve` runs) still form one chain.
public protocol AuditStore: Sendable {
    @discardableResult
    func appendAudit(_ event: AuditEvent, at date: Date) throws -> AuditRecord

    /// Records in `seq` order after `afterSeq`, at or after `since`, by `actor`, on
    /// `object` (each filter optional), at most `limit` (clamped to 1...`AuditQuery.maximumLimit`).
    /// Page with `afterSeq` = the last seq returned.
    func auditRecords(since: Date?, actor: String?, object: String?, afterSeq: Int64?, limit: Int) throws -> [AuditRecord]

    /// Walks the whole chain in `seq` order, `AuditChainVerifier.batchSize` records at a
    /// time, and reports the first broken link or the head. `anchor`, a head recorded
    /// earlier outside the coordinator, must still be in the chain with the same hash:
    /// that is what detects records deleted from the end.
    func verifyAudit(anchor: AuditAnchor?) throws -> AuditVerification
}

extension AuditStore {
    public func verifyAudit() throws -> AuditVerification {
        try verifyAudit(anchor: nil)
    }
}

/// Limits every audit read obeys: untrusted query strings end up here.
public enum AuditQuery {
    public static let maximumLimit = 1000
    public static let defaultLimit = 100
    /// Longest actor or object filter accepted (identity names and objects are far shorter).
    public static let maximumFilterLength = 256

    public static func clamp(_ limit: Int) -> Int {
        min(max(limit, 1), maximumLimit)
    }
}
