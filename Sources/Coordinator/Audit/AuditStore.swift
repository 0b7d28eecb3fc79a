import Foundation

/// Where audit records are kept: append-only, hash-chained (see `AuditRecord`).
///
/// `appendAudit` reads the chain's head and writes the next record in one transaction,
/// so concurrent appends (from several HTTP requests, or a `gantry-coordinator` command
/// on the host while `serve` runs) still form one chain.
public protocol AuditStore: Sendable {
    @discardableResult
    func appendAudit(_ event: AuditEvent, at date: Date) throws -> AuditRecord
}
