import Foundation
@testable import GantryCoordinator
import GantryPostgresStore
import Logging
import Testing

/// What every `CoordinatorStore` back end must do, written against `any CoordinatorStore`
/// so a new back end (PostgreSQL) only adds a `StoreFactory`.
///
/// The job lifecycle relies on exactly these guarantees: a batch is all or nothing and
/// applied in order, rows read back as written (dates to the millisecond), an attempt keeps
/// the time of its first lease, a log append moves `log_length` only for the job's current
/// attempt, and the listings and the reload at start return what they promise in the order
/// they promise. What is specific to SQLite (query plans, migrations) is in
/// `SQLiteStoreTests`.
@Suite("Store conformance", .timeLimit(.minutes(1)))
struct StoreConformanceTests {
    // MARK: - Rows and their fields

    @Test(arguments: StoreFactory.all)
    func everyFieldOfPipelinesJobsAndAttemptsReadsBackAsWritten(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        var pipeline = Fixture.pipeline("p1", at: Fixture.t0)
        pipeline.tag = "v1.4.0"
        pipeline.message = "Release 1.4\n\nskip nothing"
        pipeline.source = "webhook"
        // Every optional field set, dates with a millisecond part, positions inserted out
        // of order: `jobs(pipelineID:)` orders by position.
        var second = Fixture.job("p1-b", pipeline: pipeline, position: 1, state: .failed)
        second.dependsOn = ["build"]
        second.timeoutSeconds = 3600
        second.cancelGraceSeconds = 25
        second.retry = [RetryRule(.agentLost, limit: 2), RetryRule(.exitStatus(2), limit: 1), RetryRule(.anyExitStatus, limit: 3)]
        second.retryCounts = ["agent_lost": 1, "exit_status:2": 1]
        second.cancelReason = "stopped by alice"
        second.attempt = 3
        second.agentId = "host-7/2"
        second.exitStatus = 2
        second.reason = "exit status 2"
        second.queuedAt = Fixture.t0.addingTimeInterval(0.25)
        second.startedAt = Fixture.t0.addingTimeInterval(1.5)
        second.finishedAt = Fixture.t0.addingTimeInterval(2.999)
        second.logLength = 123_456
        // The pipeline language's columns (schema v7) and a block (v9).
        second.when = .onFailure
        second.softFail = .exitStatuses([2, 3])
        second.priority = -7
        second.sequence = 42
        second.concurrency = ConcurrencyRule(group: "deploy/prod:eu", limit: 2, cancelInProgress: true)
        second.outcome = .passed
        second.matrix = ["os": "linux", "swift": "6.10"]
        second.block = BlockStep(
            prompt: "Ship?", fields: [BlockField(key: "channel", label: "Channel", required: true, options: ["a", "b"])],
            roles: ["deployer:production"], identities: ["alice"])
        var first = Fixture.job("p1-a", pipeline: pipeline, position: 0, state: .succeeded)
        first.timeoutSeconds = nil
        first.env = ["A": "1", "B": "two words", "C": "ünïcode ✓"]
        first.commands = ["make", "make test", "echo 'quoted' \"twice\""]
        try store.insert(pipeline: pipeline, jobs: [second, first])

        #expect(try store.pipeline(id: "p1").map(Fixture.normalized) == Fixture.normalized(pipeline))
        #expect(try store.job(id: "p1-b").map(Fixture.normalized) == Fixture.normalized(second))
        #expect(try store.job(id: "p1-a").map(Fixture.normalized) == Fixture.normalized(first))
        #expect(try store.jobs(pipelineID: "p1").map(\.id) == ["p1-a", "p1-b"])
        #expect(try store.jobs(pipelineID: "p1").map(Fixture.normalized) == [first, second].map(Fixture.normalized))
        #expect(try store.jobs(pipelineID: "nope").isEmpty)
        #expect(try store.pipeline(id: "nope") == nil)
        #expect(try store.job(id: "nope") == nil)

        // Milliseconds survive (not rounded to the second).
        let stored = try #require(try store.job(id: "p1-b"))
        #expect(Fixture.milliseconds(stored.finishedAt) == Fixture.milliseconds(Fixture.t0).map { $0 + 2_999 })
        #expect(Fixture.milliseconds(stored.queuedAt) == Fixture.milliseconds(Fixture.t0).map { $0 + 250 })

        let attempt = StoredAttempt(
            jobId: "p1-b", attempt: 3, agentId: "host-7/2", state: .failed, exitStatus: 2, reason: "exit status 2",
            leasedAt: Fixture.t0.addingTimeInterval(1.001), startedAt: Fixture.t0.addingTimeInterval(1.5),
            finishedAt: Fixture.t0.addingTimeInterval(2.999))
        let earlier = StoredAttempt(
            jobId: "p1-b", attempt: 1, agentId: "host-1/1", state: .lost, exitStatus: nil, reason: "agent lost",
            leasedAt: Fixture.t0.addingTimeInterval(0.5), startedAt: nil, finishedAt: nil)
        try store.commit(StoreBatch([.saveAttempt(attempt), .saveAttempt(earlier)]))
        #expect(try store.attempts(jobID: "p1-b").map(Fixture.normalized) == [earlier, attempt].map(Fixture.normalized))
        #expect(try store.attempts(jobID: "p1-a").isEmpty)
    }

    @Test(arguments: StoreFactory.all)
    func pipelineExistsOnlyOnceStored(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        #expect(try !store.pipelineExists(id: "p1"))
        let pipeline = Fixture.pipeline("p1", at: Fixture.t0)
        try store.insert(pipeline: pipeline, jobs: [Fixture.job("j1", pipeline: pipeline, position: 0, state: .queued)])
        #expect(try store.pipelineExists(id: "p1"))
        #expect(try !store.pipelineExists(id: "p2"))
        #expect(try !store.pipelineExists(id: "j1"), "a job's id is not a pipeline's")
    }

    @Test(arguments: StoreFactory.all)
    func lifecycleUpdateSavesEveryChangedColumnAndClearsTheOnesSetToNil(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        let pipeline = Fixture.pipeline("p", at: Fixture.t0)
        var job = Fixture.job("j", pipeline: pipeline, position: 0, state: .queued)
        try store.insert(pipeline: pipeline, jobs: [job])
        job.state = .failed
        job.retryCounts = ["agent_lost": 1, "exit_status:*": 2]
        job.cancelReason = "stopped by alice"
        job.attempt = 3
        job.agentId = "host/2"
        job.exitStatus = 2
        job.reason = "exit status 2"
        job.startedAt = Fixture.t0.addingTimeInterval(1)
        job.finishedAt = Fixture.t0.addingTimeInterval(2)
        job.logLength = 4096
        try store.update([job])
        #expect(try store.job(id: "j").map(Fixture.normalized) == Fixture.normalized(job))

        job.retryCounts = [:]
        job.cancelReason = nil
        job.exitStatus = nil
        job.agentId = nil
        job.startedAt = nil
        try store.update([job])
        #expect(try store.job(id: "j").map(Fixture.normalized) == Fixture.normalized(job), "cleared columns are saved as NULL / {}")
    }

    // MARK: - Batches

    @Test(arguments: StoreFactory.all)
    func aBatchWhoseLastWriteFailsLeavesNothingOfItsEarlierWrites(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        let pipeline = Fixture.pipeline("p1", at: Fixture.t0)
        let job = Fixture.job("j1", pipeline: pipeline, position: 0, state: .queued)
        let unknown = Fixture.job("missing", pipeline: pipeline, position: 1, state: .queued)

        // A new pipeline, an attempt and a log chunk, then an update of an unknown job.
        var leased = job
        leased.state = .leased
        leased.attempt = 1
        leased.agentId = "a/1"
        #expect(throws: (any Error).self) {
            try store.commit(
                StoreBatch([
                    .insertPipeline(pipeline, jobs: [job]), .updateJob(leased), .saveAttempt(Fixture.attempt(leased)),
                    .appendLog(Fixture.chunk("j1", attempt: 1, offset: 0, text: "hello")), .updateJob(unknown),
                ]))
        }
        #expect(try !store.pipelineExists(id: "p1"))
        #expect(try store.pipeline(id: "p1") == nil)
        #expect(try store.job(id: "j1") == nil)
        #expect(try store.jobs(pipelineID: "p1").isEmpty)
        #expect(try store.attempts(jobID: "j1").isEmpty)
        #expect(try store.logChunks(jobID: "j1", attempt: 1, from: 0).isEmpty)
        #expect(try store.jobs(states: nil, limit: 10).isEmpty)
        #expect(try store.unfinishedJobs().isEmpty)

        // The store is usable after the failed batch, and a failed batch against stored
        // rows leaves them as they were.
        try store.insert(pipeline: pipeline, jobs: [job])
        #expect(throws: (any Error).self) {
            try store.commit(
                StoreBatch([
                    .updateJob(leased), .saveAttempt(Fixture.attempt(leased)),
                    .appendLog(Fixture.chunk("j1", attempt: 1, offset: 0, text: "hello")), .updateJob(unknown),
                ]))
        }
        #expect(try store.job(id: "j1").map(Fixture.normalized) == Fixture.normalized(job))
        #expect(try store.attempts(jobID: "j1").isEmpty)
        #expect(try store.logChunks(jobID: "j1", attempt: 1, from: 0).isEmpty)
    }

    @Test(arguments: StoreFactory.all)
    func aBatchInsertingAPipelineThatExistsFailsWhole(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        let pipeline = Fixture.pipeline("p1", at: Fixture.t0)
        try store.insert(pipeline: pipeline, jobs: [Fixture.job("j1", pipeline: pipeline, position: 0, state: .queued)])
        let other = Fixture.pipeline("p2", at: Fixture.t0)
        #expect(throws: (any Error).self) {
            try store.commit(
                StoreBatch([
                    .insertPipeline(other, jobs: [Fixture.job("j2", pipeline: other, position: 0, state: .queued)]),
                    .insertPipeline(pipeline, jobs: []),
                ]))
        }
        #expect(try !store.pipelineExists(id: "p2"))
        #expect(try store.job(id: "j2") == nil)
    }

    @Test(arguments: StoreFactory.all)
    func writesInABatchApplyInTheirOrder(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        let pipeline = Fixture.pipeline("p1", at: Fixture.t0)
        let a = Fixture.job("a", pipeline: pipeline, position: 0, state: .queued)
        let b = Fixture.job("b", pipeline: pipeline, position: 1, state: .queued)
        var aLeased = a
        aLeased.state = .leased
        aLeased.attempt = 1
        aLeased.agentId = "x/1"
        var bLeased = b
        bLeased.state = .leased
        bLeased.attempt = 1
        bLeased.agentId = "x/2"
        var aRunning = aLeased
        aRunning.state = .running
        aRunning.startedAt = Fixture.t0.addingTimeInterval(1)
        try store.commit(
            StoreBatch([
                // An update needs the insert before it.
                .insertPipeline(pipeline, jobs: [a, b]),
                // a: leased, then its log (now attempt 1's), then running: the last update wins.
                .updateJob(aLeased), .appendLog(Fixture.chunk("a", attempt: 1, offset: 0, text: "12345")),
                // b: its log arrives while the stored job is still at attempt 0, so it does not
                // move log_length; the update after it sets log_length 0 explicitly.
                .appendLog(Fixture.chunk("b", attempt: 1, offset: 0, text: "xyz")), .updateJob(bLeased),
            ]))
        var aExpected = aLeased
        aExpected.logLength = 5
        #expect(try store.job(id: "a").map(Fixture.normalized) == Fixture.normalized(aExpected))
        #expect(try store.job(id: "b").map(Fixture.normalized) == Fixture.normalized(bLeased))
        #expect(try store.logChunks(jobID: "b", attempt: 1, from: 0).count == 1, "the chunk itself is stored")

        // The same job twice in one batch: the later write wins.
        aRunning.logLength = 5
        var aDone = aRunning
        aDone.state = .succeeded
        aDone.finishedAt = Fixture.t0.addingTimeInterval(2)
        try store.commit(StoreBatch([.updateJob(aDone), .updateJob(aRunning)]))
        #expect(try store.job(id: "a").map(Fixture.normalized) == Fixture.normalized(aRunning))

        // An attempt saved twice in a batch: the later state wins.
        var attempt = Fixture.attempt(aRunning)
        attempt.state = .running
        var finished = attempt
        finished.state = .succeeded
        finished.exitStatus = 0
        try store.commit(StoreBatch([.saveAttempt(attempt), .saveAttempt(finished)]))
        #expect(try store.attempts(jobID: "a").map(\.state) == [.succeeded])
    }

    @Test(arguments: StoreFactory.all)
    func anEmptyBatchIsANoOp(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        try scratch.store.commit(StoreBatch())
        #expect(try scratch.store.jobs(states: nil, limit: 10).isEmpty)
    }

    // MARK: - Attempts

    @Test(arguments: StoreFactory.all)
    func savingAnAttemptAgainKeepsItsFirstLeasedAt(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        let pipeline = Fixture.pipeline("p", at: Fixture.t0)
        var job = Fixture.job("j", pipeline: pipeline, position: 0, state: .leased)
        job.attempt = 1
        try store.insert(pipeline: pipeline, jobs: [job])
        let leased = StoredAttempt(
            jobId: "j", attempt: 1, agentId: "a/1", state: .leased, exitStatus: nil, reason: nil,
            leasedAt: Fixture.t0.addingTimeInterval(0.123), startedAt: nil, finishedAt: nil)
        try store.commit(StoreBatch([.saveAttempt(leased)]))
        var finished = leased
        finished.leasedAt = Fixture.t0.addingTimeInterval(9)  // a later writer's idea of it
        finished.state = .failed
        finished.exitStatus = 1
        finished.reason = "exit status 1"
        finished.startedAt = Fixture.t0.addingTimeInterval(1)
        finished.finishedAt = Fixture.t0.addingTimeInterval(2)
        try store.commit(StoreBatch([.saveAttempt(finished)]))
        var expected = finished
        expected.leasedAt = leased.leasedAt
        #expect(try store.attempts(jobID: "j").map(Fixture.normalized) == [Fixture.normalized(expected)])
    }

    // MARK: - Logs

    @Test(arguments: StoreFactory.all)
    func appendingALogMovesLogLengthOnlyForTheJobsCurrentAttempt(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        let pipeline = Fixture.pipeline("p", at: Fixture.t0)
        var job = Fixture.job("j", pipeline: pipeline, position: 0, state: .running)
        job.attempt = 2
        try store.insert(pipeline: pipeline, jobs: [job])

        // A late chunk of the previous attempt is stored but does not move the current length.
        try store.commit(StoreBatch([.appendLog(Fixture.chunk("j", attempt: 1, offset: 0, text: "old attempt"))]))
        #expect(try store.job(id: "j")?.logLength == 0)
        #expect(try store.logChunks(jobID: "j", attempt: 1, from: 0).count == 1)

        try store.commit(StoreBatch([.appendLog(Fixture.chunk("j", attempt: 2, offset: 0, text: "0123456789"))]))
        #expect(try store.job(id: "j")?.logLength == 10)
        try store.commit(StoreBatch([.appendLog(Fixture.chunk("j", attempt: 2, offset: 10, text: "abc"))]))
        #expect(try store.job(id: "j")?.logLength == 13)
        #expect(try store.logChunks(jobID: "j", attempt: 2, from: 0).map(\.offset) == [0, 10])
        // Another job's chunk moves nothing here.
        try store.commit(StoreBatch([.appendLog(Fixture.chunk("other", attempt: 2, offset: 13, text: "zz"))]))
        #expect(try store.job(id: "j")?.logLength == 13)
    }

    @Test(arguments: StoreFactory.all)
    func logChunksStartAtTheChunkHoldingFromAndStopAtTheLimit(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        let pipeline = Fixture.pipeline("p", at: Fixture.t0)
        var job = Fixture.job("j", pipeline: pipeline, position: 0, state: .running)
        job.attempt = 1
        try store.insert(pipeline: pipeline, jobs: [job])
        // [0, 10) [10, 25) [25, 30), bytes that are not text (NULs, 0xFF) included.
        let chunks = [
            LogAppend(jobID: "j", attempt: 1, offset: 0, rawLength: 10, data: Data([0, 1, 2, 0xFF, 0, 0x7F])),
            LogAppend(jobID: "j", attempt: 1, offset: 10, rawLength: 15, data: Data(repeating: 0, count: 300)),
            LogAppend(jobID: "j", attempt: 1, offset: 25, rawLength: 5, data: Data("tail".utf8)),
        ]
        try store.commit(StoreBatch(chunks.map(StoreWrite.appendLog)))
        // Another attempt and another job, interleaved in the key space.
        try store.commit(StoreBatch([.appendLog(Fixture.chunk("j", attempt: 2, offset: 0, text: "second"))]))
        try store.commit(StoreBatch([.appendLog(Fixture.chunk("i", attempt: 1, offset: 0, text: "other job"))]))
        try store.commit(StoreBatch([.appendLog(Fixture.chunk("k", attempt: 1, offset: 0, text: "other job"))]))

        let rows = chunks.map { LogChunkRow(offset: $0.offset, rawLength: $0.rawLength, data: $0.data) }
        #expect(try store.logChunks(jobID: "j", attempt: 1, from: 0, limit: 64) == rows, "byte-exact data")
        let offsets = { (from: Int, limit: Int) in try store.logChunks(jobID: "j", attempt: 1, from: from, limit: limit).map(\.offset) }
        #expect(try offsets(9, 64) == [0, 10, 25], "the chunk holding byte 9 starts at 0")
        #expect(try offsets(10, 64) == [10, 25])
        #expect(try offsets(24, 64) == [10, 25])
        #expect(try offsets(25, 64) == [25])
        #expect(try offsets(29, 64) == [25])
        #expect(try offsets(30, 64) == [], "from the stored length: nothing yet")
        #expect(try offsets(1_000, 64) == [])
        #expect(try offsets(0, 2) == [0, 10])
        #expect(try offsets(12, 1) == [10])
        #expect(try offsets(0, 0) == [])
        #expect(try store.logChunks(jobID: "j", attempt: 2, from: 0).map(\.rawLength) == [6])
        #expect(try store.logChunks(jobID: "j", attempt: 3, from: 0).isEmpty)
        #expect(try store.logChunks(jobID: "nope", attempt: 1, from: 0).isEmpty)
        // The protocol's default page.
        #expect(try store.logChunks(jobID: "j", attempt: 1, from: 0) == rows)
    }

    // MARK: - Listings

    @Test(arguments: StoreFactory.all)
    func jobsAreListedNewestFirstAndFilteredByState(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        // Three pipelines a millisecond apart (inserted oldest last), three jobs each.
        let states: [[JobState]] = [[.succeeded, .failed, .cancelled], [.running, .queued, .waiting], [.failed, .timedOut, .lost]]
        var all: [StoredJob] = []
        for index in [2, 0, 1] {
            let pipeline = Fixture.pipeline("p\(index)", at: Fixture.t0.addingTimeInterval(Double(index) / 1000))
            let jobs = states[index].enumerated().map { position, state in
                Fixture.job("p\(index)-\(position)", pipeline: pipeline, position: position, state: state)
            }
            try store.insert(pipeline: pipeline, jobs: jobs)
            all += jobs
        }
        let newestFirst = all.sorted { ($0.createdAt, $0.position) > ($1.createdAt, $1.position) }.map(\.id)
        #expect(newestFirst == ["p2-2", "p2-1", "p2-0", "p1-2", "p1-1", "p1-0", "p0-2", "p0-1", "p0-0"])

        #expect(try store.jobs(states: nil, limit: 100).map(\.id) == newestFirst)
        #expect(try store.jobs().map(\.id) == newestFirst, "the default: every state, up to 200")
        #expect(try store.jobs(states: nil, limit: 4).map(\.id) == Array(newestFirst.prefix(4)))
        #expect(try store.jobs(states: nil, limit: 0).isEmpty)
        #expect(try store.jobs(states: [.failed], limit: 100).map(\.id) == ["p2-0", "p0-1"])
        #expect(try store.jobs(states: [.failed], limit: 1).map(\.id) == ["p2-0"])
        #expect(try store.jobs(states: [.failed, .failed], limit: 100).map(\.id) == ["p2-0", "p0-1"], "a repeated state counts once")
        #expect(
            try store.jobs(states: [.waiting, .failed, .succeeded], limit: 100).map(\.id) == ["p2-0", "p1-2", "p0-1", "p0-0"],
            "several states merge newest first whatever order they are given in")
        #expect(try store.jobs(states: [.waiting, .failed, .succeeded], limit: 3).map(\.id) == ["p2-0", "p1-2", "p0-1"])
        #expect(try store.jobs(states: JobState.allCases, limit: 100).map(\.id) == newestFirst)
        #expect(try store.jobs(states: [], limit: 100).isEmpty, "no state: no job")
        #expect(try store.jobs(states: [.leased], limit: 100).isEmpty)

        // The listing sees lifecycle updates.
        var job = try #require(try store.job(id: "p1-1"))
        job.state = .leased
        job.attempt = 1
        try store.update([job])
        #expect(try store.jobs(states: [.leased], limit: 100).map(\.id) == ["p1-1"])
        #expect(try store.jobs(states: [.queued], limit: 100).isEmpty)
    }

    @Test(arguments: StoreFactory.all)
    func unfinishedJobsAreExactlyTheNonTerminalOnesInSubmissionOrder(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        #expect(try store.unfinishedJobs().isEmpty)
        // Every state in each pipeline, jobs inserted in reverse position order.
        var expected: [String] = []
        for index in 0..<3 {
            let pipeline = Fixture.pipeline("p\(index)", at: Fixture.t0.addingTimeInterval(Double(index)))
            let jobs = JobState.allCases.enumerated().map { position, state in
                var job = Fixture.job("p\(index)-\(state.rawValue)", pipeline: pipeline, position: position, state: state)
                if state.isHeld { (job.attempt, job.agentId) = (1, "a/1") }
                return job
            }
            try store.insert(pipeline: pipeline, jobs: jobs.reversed())
            expected += jobs.filter { !$0.isTerminal }.map(\.id)
        }
        #expect(Set(JobState.allCases.filter { !$0.isTerminal }) == [.waiting, .queued, .leased, .running, .lost, .blocked])
        let unfinished = try store.unfinishedJobs()
        #expect(unfinished.map(\.id) == expected)
        #expect(unfinished.allSatisfy { !$0.isTerminal })
        #expect(unfinished.first { $0.state == .running }?.agentId == "a/1", "whole rows, not just ids")

        // A job that finishes leaves the set; one that is re-queued stays in its place.
        var done = try #require(try store.job(id: "p0-running"))
        done.state = .succeeded
        var requeued = try #require(try store.job(id: "p1-leased"))
        requeued.state = .queued
        try store.update([done, requeued])
        #expect(try store.unfinishedJobs().map(\.id) == expected.filter { $0 != "p0-running" })
    }
}

// MARK: - Back ends

/// Makes an empty store of one back end, with a scratch place of its own.
struct StoreFactory: Sendable, CustomTestStringConvertible {
    let name: String
    let make: @Sendable () throws -> ScratchStore

    var testDescription: String { name }

    /// Every back end the conformance suite runs against.
    static let all: [StoreFactory] = [.sqlite, .postgres]

    static let sqlite = StoreFactory(name: "SQLite") {
        let directory = NSTemporaryDirectory() + "gantry-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return ScratchStore(store: try SQLiteStore(path: directory + "/gantry.sqlite")) {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}

extension StoreFactory {
    /// A database of its own on the test process's private server (`PostgresServer`).
    static let postgres = StoreFactory(name: "PostgreSQL") {
        let server = try PostgresServer.shared.get()
        let store = try PostgresStore(url: try server.makeDatabase(), logger: Logger(label: "test"))
        return ScratchStore(store: store) { store.pool.shutdown() }
    }
}

/// A store under test; its scratch place (directory, database) goes away with it.
final class ScratchStore {
    let store: any CoordinatorStore
    private let cleanup: () -> Void

    init(store: any CoordinatorStore, cleanup: @escaping () -> Void) {
        self.store = store
        self.cleanup = cleanup
    }

    deinit { cleanup() }
}

// MARK: - Rows

enum Fixture {
    /// A whole second plus a fraction that is a whole number of milliseconds.
    static let t0 = Date(timeIntervalSince1970: 1_795_000_000.5)

    static func pipeline(_ id: String, at date: Date) -> StoredPipeline {
        StoredPipeline(
            id: id, file: "ci/\(id).yml", yaml: "steps:\n  - key: build\n    command: make\n",
            repository: "https://git.example.com/app.git", commit: "9fceb02d0ae598e95dc970b74767f19372d61af8",
            branch: "main", env: ["CI": "true", "EMPTY": ""], createdAt: date)
    }

    static func job(_ id: String, pipeline: StoredPipeline, position: Int, state: JobState) -> StoredJob {
        StoredJob(
            id: id, pipelineId: pipeline.id, position: position, key: "step-\(position)", name: "Step \(position)",
            state: state, commands: ["make"], env: ["A": "1"], agents: ["os": "linux"], dependsOn: [], timeoutSeconds: 60,
            cancelGraceSeconds: 10, retry: RetryRule.defaults, retryCounts: [:], cancelReason: nil, attempt: 0,
            agentId: nil, exitStatus: nil, reason: nil, createdAt: pipeline.createdAt, queuedAt: pipeline.createdAt,
            startedAt: nil, finishedAt: nil, logLength: 0)
    }

    static func attempt(_ job: StoredJob) -> StoredAttempt {
        StoredAttempt(
            jobId: job.id, attempt: job.attempt, agentId: job.agentId ?? "a/1", state: .leased, exitStatus: nil,
            reason: nil, leasedAt: t0, startedAt: nil, finishedAt: nil)
    }

    /// A chunk whose bytes are `text` itself: the store keeps blobs as given, it never
    /// inflates them.
    static func chunk(_ jobID: String, attempt: Int, offset: Int, text: String) -> LogAppend {
        LogAppend(jobID: jobID, attempt: attempt, offset: offset, rawLength: text.utf8.count, data: Data(text.utf8))
    }

    /// Milliseconds since 1970, rounded: what a store must keep of a date.
    static func milliseconds(_ date: Date?) -> Int64? {
        date.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }
    }

    static func millisecond(_ date: Date) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds(date) ?? 0) / 1000)
    }

    static func millisecond(_ date: Date?) -> Date? { date.map(millisecond) }

    static func normalized(_ pipeline: StoredPipeline) -> StoredPipeline {
        var pipeline = pipeline
        pipeline.createdAt = millisecond(pipeline.createdAt)
        return pipeline
    }

    static func normalized(_ job: StoredJob) -> StoredJob {
        var job = job
        job.createdAt = millisecond(job.createdAt)
        job.queuedAt = millisecond(job.queuedAt)
        job.startedAt = millisecond(job.startedAt)
        job.finishedAt = millisecond(job.finishedAt)
        return job
    }

    static func normalized(_ attempt: StoredAttempt) -> StoredAttempt {
        var attempt = attempt
        attempt.leasedAt = millisecond(attempt.leasedAt)
        attempt.startedAt = millisecond(attempt.startedAt)
        attempt.finishedAt = millisecond(attempt.finishedAt)
        return attempt
    }
}
