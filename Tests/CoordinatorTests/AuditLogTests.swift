import Foundation
import GantryPostgresStore
import GRDB
import Logging
import Testing

@testable import GantryCoordinator

/// The audit chain detects an edited, deleted, reordered or inserted record at the seq
/// where it happened; reads filter and page within their bounds; concurrent appends still
/// form one chain.
@Suite("Audit log", .timeLimit(.minutes(1)))
struct AuditLogTests {
    static func audit(_ scratch: ScratchStore) throws -> any AuditStore {
        try #require(scratch.store as? any AuditStore)
    }

    static let start = Date(timeIntervalSince1970: 1_780_000_000)

    static func event(_ index: Int, actor: String = "admin", object: String? = nil) -> AuditEvent {
        AuditEvent(
            actor: actor, tokenID: "tok\(index)", address: "127.0.0.1", action: "pipeline.submit",
            object: object ?? "pipeline:p\(index)", outcome: index % 3 == 0 ? "denied" : "succeeded", detail: ["jobs": "\(index)"])
    }

    @discardableResult
    static func append(_ count: Int, to store: any AuditStore) throws -> [AuditRecord] {
        try (1...count).map { try store.appendAudit(Self.event($0), at: Self.start.addingTimeInterval(Double($0))) }
    }

    @Test(arguments: StoreFactory.all) func anIntactChainVerifiesWithItsHead(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        #expect(try store.verifyAudit() == AuditVerification(count: 0, head: nil, broken: nil))
        let records = try Self.append(25, to: store)
        let result = try store.verifyAudit()
        #expect(result.ok, "\(result.summary)")
        #expect(result.count == 25)
        #expect(result.head?.seq == 25)
        #expect(result.head?.hash == records.last?.hash)
        #expect(records.first?.prevHash == AuditRecord.genesisHash)
    }

    @Test(arguments: StoreFactory.all) func verificationWalksMoreThanOneBatch(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        try Self.append(AuditChainVerifier.batchSize + 5, to: store)
        try scratch.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = ?", .values(AuditChainVerifier.batchSize + 3))
        let result = try store.verifyAudit()
        #expect(result.broken?.seq == Int64(AuditChainVerifier.batchSize + 3))
        #expect(result.broken?.problem == .edited)
    }

    @Test(arguments: StoreFactory.all) func anEditedFieldIsDetectedAtItsSeq(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        try Self.append(10, to: store)
        try scratch.execute("UPDATE audit_log SET outcome = 'succeeded' WHERE seq = 6")
        let result = try store.verifyAudit()
        #expect(!result.ok)
        #expect(result.broken?.seq == 6)
        #expect(result.broken?.problem == .edited)
        #expect(result.summary.contains("record 6 was edited"))
    }

    @Test(arguments: StoreFactory.all) func anEditWithARecomputedHashBreaksTheNextLink(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        let records = try Self.append(10, to: store)
        var forged = records[3]
        forged.actor = "someone-else"
        forged.hash = forged.computedHash()
        try scratch.execute("UPDATE audit_log SET actor = ?, hash = ? WHERE seq = 4", .values(forged.actor, forged.hash))
        let result = try store.verifyAudit()
        #expect(result.broken?.seq == 5)
        #expect(result.broken?.problem == .unlinked)
    }

    /// SQLite only: PostgreSQL's `timestamptz` column refuses text that is not a time.
    @Test func anUnreadableFieldIsReportedNotFatal() throws {
        let scratch = try StoreFactory.sqlite.make()
        let store = try Self.audit(scratch)
        try Self.append(5, to: store)
        try scratch.execute("UPDATE audit_log SET at = 'not a time' WHERE seq = 5")
        let result = try store.verifyAudit()
        #expect(result.broken?.seq == 5)
        // Appending after a tampered head still works (verify already names the record).
        try store.appendAudit(Self.event(6), at: Self.start)
    }

    @Test(arguments: StoreFactory.all) func aDeletedMiddleRecordIsDetected(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        try Self.append(10, to: store)
        try scratch.execute("DELETE FROM audit_log WHERE seq = 5")
        let result = try store.verifyAudit()
        #expect(result.broken?.seq == 6)
        #expect(result.broken?.problem == .missing(expectedSeq: 5))
        #expect(result.count == 4)
        #expect(result.summary.contains("record 5 is missing"))
    }

    @Test(arguments: StoreFactory.all) func aDeletedFirstRecordIsDetected(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        try Self.append(3, to: store)
        try scratch.execute("DELETE FROM audit_log WHERE seq = 1")
        #expect(try store.verifyAudit().broken?.seq == 2)
    }

    @Test(arguments: StoreFactory.all) func aRenumberedDeletionIsDetected(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        try Self.append(6, to: store)
        try scratch.execute("DELETE FROM audit_log WHERE seq = 3")
        try scratch.execute("UPDATE audit_log SET seq = seq - 1 WHERE seq > 3")
        let result = try store.verifyAudit()
        #expect(result.broken?.seq == 3)
        #expect(!result.ok)
    }

    @Test(arguments: StoreFactory.all) func swappedRecordsAreDetected(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        try Self.append(8, to: store)
        try scratch.execute("UPDATE audit_log SET seq = -1 WHERE seq = 3")
        try scratch.execute("UPDATE audit_log SET seq = 3 WHERE seq = 4")
        try scratch.execute("UPDATE audit_log SET seq = 4 WHERE seq = -1")
        let result = try store.verifyAudit()
        #expect(result.broken?.seq == 3)
    }

    @Test(arguments: StoreFactory.all) func anInsertedRecordIsDetected(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        let records = try Self.append(8, to: store)
        // Make room after 5 and insert a record that links correctly to 5: the record
        // after it (the old 6) no longer hashes or links.
        try scratch.execute("UPDATE audit_log SET seq = seq + 100 WHERE seq > 5")
        try scratch.execute("UPDATE audit_log SET seq = seq - 99 WHERE seq > 100")
        let inserted = AuditRecord(event: Self.event(99, actor: "ghost"), at: Self.start, seq: 6, previousHash: records[4].hash)
        try scratch.insert(inserted)
        let result = try store.verifyAudit()
        #expect(result.broken?.seq == 7)
    }

    @Test(arguments: StoreFactory.all) func deletedNewestRecordsNeedAnAnchor(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        try Self.append(10, to: store)
        let head = try #require(try store.verifyAudit().head)
        let anchor = AuditAnchor(seq: head.seq, hash: head.hash)
        #expect(try store.verifyAudit(anchor: anchor).ok)
        #expect(AuditAnchor(parsing: "\(head.seq):\(head.hash.hexString)") == anchor)
        try scratch.execute("DELETE FROM audit_log WHERE seq > 8")
        // The shorter chain is intact on its own...
        #expect(try store.verifyAudit().ok)
        // ...but not against the head recorded earlier.
        let result = try store.verifyAudit(anchor: anchor)
        #expect(result.broken?.seq == 8)
        #expect(result.broken?.problem == .truncated(anchorSeq: 10))
        #expect(try store.verifyAudit(anchor: AuditAnchor(seq: 3, hash: head.hash)).broken?.problem == .anchorMismatch)
    }

    @Test func anchorsParseOnlyTheirFormat() {
        for text in ["", "1", "x:00", "0:" + String(repeating: "0", count: 64), "1:" + String(repeating: "0", count: 63),
            "1:" + String(repeating: "g", count: 64), "-1:" + String(repeating: "0", count: 64),
            "99999999999999999999:" + String(repeating: "0", count: 64)]
        {
            #expect(AuditAnchor(parsing: text) == nil, "\(text)")
        }
        #expect(AuditAnchor(parsing: "7:" + String(repeating: "aB", count: 32)) != nil)
    }

    @Test(arguments: StoreFactory.all) func concurrentAppendsFormOneChain(_ factory: StoreFactory) async throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for index in 0..<25 {
                        try store.appendAudit(Self.event(task * 100 + index, actor: "task\(task)"), at: Date())
                    }
                }
            }
            try await group.waitForAll()
        }
        let result = try store.verifyAudit()
        #expect(result.ok, "\(result.summary)")
        #expect(result.count == 200)
    }

    /// Two coordinators on one database: each store has its own pool, so only the
    /// server's advisory lock orders their appends.
    @Test func concurrentAppendsFromTwoPostgresStoresFormOneChain() async throws {
        let url = try PostgresServer.shared.get().makeDatabase()
        let stores = try (0..<2).map { _ in try PostgresStore(url: url, logger: Logger(label: "test")) }
        defer { for store in stores { store.pool.shutdown() } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                let store = stores[task % 2]
                group.addTask {
                    for index in 0..<25 {
                        try store.appendAudit(Self.event(task * 100 + index, actor: "task\(task)"), at: Date())
                    }
                }
            }
            try await group.waitForAll()
        }
        for store in stores {
            let result = try store.verifyAudit()
            #expect(result.ok, "\(result.summary)")
            #expect(result.count == 200)
        }
    }

    @Test(arguments: StoreFactory.all) func timesNeverGoBackwardsAlongTheChain(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        let first = try store.appendAudit(Self.event(1), at: Self.start.addingTimeInterval(10))
        let second = try store.appendAudit(Self.event(2), at: Self.start)
        #expect(second.at == first.at)
        #expect(try store.verifyAudit().ok)
    }

    @Test(arguments: StoreFactory.all) func readsFilterAndPageInSeqOrder(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        for index in 1...30 {
            try store.appendAudit(
                Self.event(index, actor: index % 2 == 0 ? "even" : "odd", object: index % 5 == 0 ? "identity:v" : nil),
                at: Self.start.addingTimeInterval(Double(index * 60)))
        }
        #expect(try store.auditRecords(since: nil, actor: nil, object: nil, afterSeq: nil, limit: 10).map(\.seq) == Array(1...10))
        #expect(try store.auditRecords(since: nil, actor: nil, object: nil, afterSeq: 25, limit: 10).map(\.seq) == Array(26...30))
        #expect(try store.auditRecords(since: nil, actor: "even", object: nil, afterSeq: 10, limit: 3).map(\.seq) == [12, 14, 16])
        #expect(try store.auditRecords(since: nil, actor: nil, object: "identity:v", afterSeq: nil, limit: 100).map(\.seq) == [5, 10, 15, 20, 25, 30])
        for seq in [1, 2, 17, 29, 30] {
            let since = Self.start.addingTimeInterval(Double(seq * 60))
            #expect(try store.auditRecords(since: since, actor: nil, object: nil, afterSeq: nil, limit: 1).first?.seq == Int64(seq))
            // Between two records: the later one.
            #expect(
                try store.auditRecords(since: since.addingTimeInterval(-30), actor: nil, object: nil, afterSeq: nil, limit: 1).first?.seq
                    == Int64(seq))
        }
        #expect(try store.auditRecords(since: Self.start.addingTimeInterval(31 * 60), actor: nil, object: nil, afterSeq: nil, limit: 5).isEmpty)
        #expect(try store.auditRecords(since: nil, actor: "nobody", object: nil, afterSeq: nil, limit: 5).isEmpty)
        #expect(try store.auditRecords(since: nil, actor: nil, object: nil, afterSeq: nil, limit: 0).count == 1)
        #expect(try store.auditRecords(since: nil, actor: nil, object: nil, afterSeq: -5, limit: 2).map(\.seq) == [1, 2])
    }

    @Test(arguments: StoreFactory.all) func theLimitIsBounded(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try Self.audit(scratch)
        try Self.append(AuditQuery.maximumLimit + 20, to: store)
        #expect(try store.auditRecords(since: nil, actor: nil, object: nil, afterSeq: nil, limit: .max).count == AuditQuery.maximumLimit)
    }

    @Test func filtersRefuseHostileText() throws {
        #expect(throws: AuditFilter.Invalid.self) { try AuditFilter(since: "yesterday", actor: nil, object: nil, after: nil, limit: nil) }
        #expect(throws: AuditFilter.Invalid.self) {
            try AuditFilter(since: nil, actor: String(repeating: "a", count: 300), object: nil, after: nil, limit: nil)
        }
        #expect(throws: AuditFilter.Invalid.self) { try AuditFilter(since: nil, actor: nil, object: nil, after: "1 OR 1=1", limit: nil) }
        #expect(throws: AuditFilter.Invalid.self) { try AuditFilter(since: nil, actor: nil, object: nil, after: "-3", limit: nil) }
        #expect(throws: AuditFilter.Invalid.self) { try AuditFilter(since: nil, actor: nil, object: nil, after: nil, limit: "99999999999") }
        #expect(throws: AuditFilter.Invalid.self) { try AuditFilter(since: nil, actor: nil, object: nil, after: nil, limit: "5000") }
        #expect(throws: AuditFilter.Invalid.self) { try AuditFilter(since: nil, actor: nil, object: nil, after: nil, limit: "0") }
        let parsed = try AuditFilter(since: "2026-12-01T05:00:00.250Z", actor: "", object: "x' OR '1'='1", after: "7", limit: "1000")
        #expect(parsed.since == Date(timeIntervalSince1970: 1_796_101_200.25))
        #expect(parsed.actor == nil)
        #expect(parsed.limit == AuditQuery.maximumLimit)
        #expect(try AuditFilter(since: "2026-12-01T05:00:00Z", actor: nil, object: nil, after: nil, limit: nil).since != nil)
    }
}
