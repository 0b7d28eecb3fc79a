import Foundation
@testable import GantryCoordinator
import Logging
import Testing

/// What a caller can make the audit log hold: bounded, log-safe fields, and refusals
/// rate-limited per token with the excess recorded once.
@Suite("Audit log limits", .timeLimit(.minutes(1)))
struct AuditLogLimitsTests {

    @Test(arguments: StoreFactory.all) func fieldsAreCutAndMadeLogSafe(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any AuditStore)
        let log = AuditLog(store: store, logger: Logger(label: "test"))
        let hostile = "identity:" + String(repeating: "\u{202E}x\n", count: 40_000)
        log.record(
            AuditEvent(
                actor: "v", tokenID: "tok_1", address: "127.0.0.1", action: "identity.disable", object: hostile,
                outcome: "denied", detail: ["k\n": String(repeating: "y", count: 100_000)]))
        let record = try #require(try store.auditRecords(since: nil, actor: nil, object: nil, afterSeq: nil, limit: 10).first)
        // Cut at 256 input characters; an escape is at most 9 output characters.
        #expect(record.object.count <= AuditLog.maximumFieldLength * 9 + 1)
        #expect(!record.object.contains("\n") && !record.object.unicodeScalars.contains("\u{202E}"))
        #expect(record.detail.utf8.count < 1024)
        #expect(try store.verifyAudit().ok)
    }

    @Test(arguments: StoreFactory.all) func refusalsAreRateLimitedPerTokenAndTheExcessIsRecordedOnce(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any AuditStore)
        let log = AuditLog(store: store, logger: Logger(label: "test"), refusalsPerMinute: 5)
        let start = Date()
        func deny(_ token: String, at offset: TimeInterval) {
            log.record(
                AuditEvent(actor: "v", tokenID: token, address: nil, action: "pipeline.submit", object: "/v1/pipelines", outcome: "denied"),
                at: start.addingTimeInterval(offset))
        }
        for i in 0..<50 { deny("tok_a", at: Double(i) * 0.1) }
        deny("tok_b", at: 1)  // another token is not limited by the first
        // A success is never limited.
        log.record(
            AuditEvent(actor: "v", tokenID: "tok_a", address: nil, action: "token.create", object: "token:x", outcome: "succeeded"),
            at: start.addingTimeInterval(6))
        deny("tok_a", at: 61)  // next minute: recorded, with a summary of the 45 dropped
        let records = try store.auditRecords(since: nil, actor: nil, object: nil, afterSeq: nil, limit: 1000)
        #expect(records.filter { $0.tokenId == "tok_a" && $0.action == "pipeline.submit" }.count == 6)
        #expect(records.filter { $0.tokenId == "tok_b" }.count == 1)
        let summary = try #require(records.first { $0.action == "audit.suppressed" })
        #expect(summary.event.detail["count"] == "45")
        #expect(try store.verifyAudit().ok)
    }
}
