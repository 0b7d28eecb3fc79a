import Foundation
@testable import GantryCoordinator
@testable import GantryPostgresStore
import Logging
import Testing

/// `migrate-store`'s copy from SQLite into PostgreSQL: everything reads back the same
/// through the store protocols, cursors and audit sequence numbers survive, the copy
/// continues its identity sequences, and a target that already has rows is refused.
@Suite("migrate-store", .timeLimit(.minutes(2)))
struct MigrateStoreTests {
    static func event(_ index: Int) -> AuditEvent {
        AuditEvent(
            actor: "admin", tokenID: "tok\(index)", address: "127.0.0.1", action: "pipeline.submit",
            object: "pipeline:p\(index)", outcome: "succeeded", detail: ["jobs": "\(index)"])
    }

    @Test func everythingReadsBackTheSameAfterTheCopy() throws {
        let directory = NSTemporaryDirectory() + "gantry-migrate-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/gantry.sqlite"
        let sqlite = try SQLiteStore(path: path)
        var pipelines: [StoredPipeline] = []
        for n in 0..<3 {
            let pipeline = Fixture.pipeline("p\(n)", at: Fixture.t0.addingTimeInterval(Double(n)))
            var done = Fixture.job("p\(n)-a", pipeline: pipeline, position: 0, state: .succeeded)
            done.attempt = 1
            done.agentId = "host/1"
            done.finishedAt = Fixture.t0.addingTimeInterval(Double(n) + 0.5)
            let waiting = Fixture.job("p\(n)-b", pipeline: pipeline, position: 1, state: .queued)
            try sqlite.insert(pipeline: pipeline, jobs: [done, waiting])
            try sqlite.commit(
                StoreBatch([
                    .saveAttempt(Fixture.attempt(done)),
                    .appendLog(LogAppend(jobID: done.id, attempt: 1, offset: 0, rawLength: 5, data: Data([1, 2, 3]))),
                    .appendLog(LogAppend(jobID: done.id, attempt: 1, offset: 5, rawLength: 7, data: Data([4, 5, 6, 7]))),
                    .notificationEvents([
                        StoredNotificationEvent(type: .pipelineFinished, pipelineId: pipeline.id, occurredAt: Fixture.t0)
                    ]),
                ]))
            pipelines.append(pipeline)
        }
        for n in 1...5 { try sqlite.appendAudit(Self.event(n), at: Fixture.t0.addingTimeInterval(Double(n))) }

        let target = try PostgresStore(url: try PostgresServer.shared.get().makeDatabase(), logger: Logger(label: "test"))
        let counts = try SQLiteToPostgres.copy(sqlitePath: path, into: target)
        #expect(counts.first { $0.table == "jobs" }?.rows == 6)
        #expect(counts.first { $0.table == "log_chunks" }?.rows == 6)

        for pipeline in pipelines {
            #expect(try target.pipeline(id: pipeline.id).map(Fixture.normalized) == Fixture.normalized(pipeline))
            #expect(try target.jobs(pipelineID: pipeline.id) == sqlite.jobs(pipelineID: pipeline.id))
            #expect(try target.attempts(jobID: "\(pipeline.id)-a") == sqlite.attempts(jobID: "\(pipeline.id)-a"))
            #expect(try target.logChunks(jobID: "\(pipeline.id)-a", attempt: 1, from: 0) == sqlite.logChunks(jobID: "\(pipeline.id)-a", attempt: 1, from: 0))
        }
        #expect(try target.unfinishedJobs().map(\.id) == sqlite.unfinishedJobs().map(\.id))
        // Cursors handed out before the move still page the same.
        let page = try sqlite.jobPage(states: nil, before: nil, limit: 2)
        #expect(try target.jobPage(states: nil, before: nil, limit: 2).map(\.cursor) == page.map(\.cursor))
        #expect(try target.jobPage(states: nil, before: page.last?.cursor, limit: 10).map(\.job.id)
            == sqlite.jobPage(states: nil, before: page.last?.cursor, limit: 10).map(\.job.id))
        // The audit chain is the same chain, and goes on from its head.
        let verified = try target.verifyAudit(anchor: nil)
        let original = try sqlite.verifyAudit(anchor: nil)
        #expect(verified.ok && verified == original)
        let next = try target.appendAudit(Self.event(6), at: Fixture.t0.addingTimeInterval(6))
        #expect(next.seq == 6)
        #expect(try target.verifyAudit(anchor: nil).ok)
        // New rows are numbered after the copied ones.
        let later = Fixture.pipeline("p9", at: Fixture.t0.addingTimeInterval(60))
        try target.insert(pipeline: later, jobs: [Fixture.job("p9-a", pipeline: later, position: 0, state: .queued)])
        #expect(try target.jobPage(states: nil, before: nil, limit: 1).first?.job.id == "p9-a")
        #expect((try target.jobPage(states: nil, before: nil, limit: 1).first?.cursor.rowid ?? 0) > (page.first?.cursor.rowid ?? .max))

        // A second copy into the same database mixes two histories: refused.
        #expect(throws: SQLiteToPostgres.MigrationError.self) { try SQLiteToPostgres.copy(sqlitePath: path, into: target) }
    }
}
