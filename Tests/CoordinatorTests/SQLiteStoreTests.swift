import Foundation
@testable import GantryCoordinator
import Testing

/// What is specific to the SQLite back end: every query the coordinator runs on a long
/// history uses an index (read from `EXPLAIN QUERY PLAN`), and a database an older release
/// left gets those indexes on first open. The behaviour itself is `StoreConformanceTests`.
@Suite("SQLite store", .timeLimit(.minutes(1)))
struct SQLiteStoreTests {
    let scratch: ScratchStore
    var store: SQLiteStore { scratch.store as! SQLiteStore }

    init() throws {
        scratch = try StoreFactory.sqlite.make()
    }

    // MARK: - Query plans

    /// Plan lines that read the whole `jobs` table, or sort rows instead of reading them
    /// in index order: both cost O(history).
    static func costlyLines(_ plan: [String]) -> [String] {
        plan.filter { line in
            line == "SCAN jobs" || line.hasPrefix("SCAN jobs ") && !line.contains("USING INDEX")
                || line.contains("TEMP B-TREE")
                || line.hasPrefix("SCAN attempts") || line.hasPrefix("SCAN log_chunks") || line.hasPrefix("SCAN pipelines")
        }
    }

    /// The lines of a plan that touch a table, for the index check.
    static func tableLines(_ plan: [String]) -> [String] {
        plan.filter { $0.hasPrefix("SCAN ") || $0.hasPrefix("SEARCH ") }
    }

    @Test func listingTheNewestJobsWalksTheCreationIndexBackwardsWithoutSorting() throws {
        let query = try #require(SQLiteStore.newestJobsQuery(states: nil, limit: 50))
        let plan = try store.queryPlan(query.sql, values: query.arguments)
        // The one `SCAN` allowed: an ordered walk of `jobs_by_creation` that the LIMIT stops
        // after 50 rows. No table scan, no sort.
        #expect(plan == ["SCAN jobs USING INDEX jobs_by_creation"], "\(plan)")
        #expect(Self.costlyLines(plan).isEmpty, "\(plan)")
    }

    @Test(arguments: [[JobState.failed], [.running, .queued], [.succeeded, .failed, .cancelled, .timedOut]])
    func listingByStateSearchesEachStatesRangeAndMergesThem(_ states: [JobState]) throws {
        let query = try #require(SQLiteStore.newestJobsQuery(states: states, limit: 50))
        let plan = try store.queryPlan(query.sql, values: query.arguments)
        #expect(Self.costlyLines(plan).isEmpty, "\(plan)")
        let reads = Self.tableLines(plan)
        #expect(reads.count == states.count, "\(plan)")
        #expect(reads.allSatisfy { $0 == "SEARCH jobs USING INDEX jobs_by_state_creation (state=?)" }, "\(plan)")
        if states.count > 1 { #expect(plan.contains("MERGE (UNION ALL)"), "\(plan)") }
    }

    @Test func reloadingUnfinishedJobsSearchesOnlyTheUnfinishedStates() throws {
        let plan = try store.queryPlan(SQLiteStore.unfinishedJobsSQL)
        #expect(Self.costlyLines(plan).isEmpty, "\(plan)")
        let reads = Self.tableLines(plan)
        #expect(reads.count == JobState.allCases.filter { !$0.isTerminal }.count, "\(plan)")
        #expect(reads.allSatisfy { $0.hasPrefix("SEARCH jobs USING INDEX jobs_by_state_creation (state=?)") }, "\(plan)")
    }

    @Test func aJobItsAttemptsItsPipelinesJobsAndItsLogAreKeyLookups() throws {
        let job = try store.queryPlan(SQLiteStore.jobSQL, arguments: ["j"])
        #expect(job == ["SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 (id=?)"], "\(job)")

        let attempts = try store.queryPlan(SQLiteStore.attemptsSQL, arguments: ["j"])
        #expect(Self.costlyLines(attempts).isEmpty, "\(attempts)")
        #expect(
            Self.tableLines(attempts).allSatisfy { $0.hasPrefix("SEARCH attempts USING") && $0.hasSuffix("(job_id=?)") },
            "\(attempts)")

        let pipelineJobs = try store.queryPlan(SQLiteStore.pipelineJobsSQL, arguments: ["p"])
        #expect(pipelineJobs == ["SEARCH jobs USING INDEX jobs_by_pipeline (pipeline_id=?)"], "\(pipelineJobs)")

        // The writes of every lifecycle turn find their row by key too.
        for update in [SQLiteStore.moveLogLengthSQL, StoredJob.lifecycleUpdate] {
            let plan = try store.queryPlan(update)
            #expect(plan == ["SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 (id=?)"], "\(update): \(plan)")
        }

        let chunks = try store.queryPlan(SQLiteStore.logChunksSQL, arguments: ["j", 1, 1_000_000, 64])
        #expect(Self.costlyLines(chunks).isEmpty, "\(chunks)")
        let reads = Self.tableLines(chunks)
        #expect(
            reads == [
                "SEARCH log_chunks USING PRIMARY KEY (job_id=? AND attempt=? AND offset>?)",
                "SEARCH log_chunks USING PRIMARY KEY (job_id=? AND attempt=? AND offset<?)",
            ], "seek to the chunk holding `from`, then read on: \(chunks)")
    }

    /// The plans above hold on a populated table too (SQLite has no statistics here, as in
    /// production: the coordinator never runs ANALYZE), and the results stay right.
    @Test func plansAndResultsHoldWithAHistory() throws {
        var pipelines: [StoreWrite] = []
        for index in 0..<300 {
            let pipeline = Fixture.pipeline("p\(index)", at: Fixture.t0.addingTimeInterval(Double(index)))
            pipelines.append(
                .insertPipeline(
                    pipeline,
                    jobs: (0..<10).map { position in
                        Fixture.job(
                            "p\(index)-\(position)", pipeline: pipeline, position: position,
                            state: index >= 298 ? .queued : (position == 3 ? .failed : .succeeded))
                    }))
        }
        try store.commit(StoreBatch(pipelines))
        let newest = try #require(SQLiteStore.newestJobsQuery(states: nil, limit: 50))
        #expect(try store.queryPlan(newest.sql, values: newest.arguments) == ["SCAN jobs USING INDEX jobs_by_creation"])
        let byState = try #require(SQLiteStore.newestJobsQuery(states: [.failed, .queued], limit: 50))
        #expect(Self.costlyLines(try store.queryPlan(byState.sql, values: byState.arguments)).isEmpty)
        #expect(Self.costlyLines(try store.queryPlan(SQLiteStore.unfinishedJobsSQL)).isEmpty)

        #expect(try store.jobs(states: nil, limit: 3).map(\.id) == ["p299-9", "p299-8", "p299-7"])
        #expect(try store.jobs(states: [.failed], limit: 2).map(\.id) == ["p297-3", "p296-3"])
        #expect(try store.jobs(states: [.failed, .queued], limit: 21).map(\.id).suffix(2) == ["p298-0", "p297-3"])
        #expect(try store.unfinishedJobs().map(\.id) == (298..<300).flatMap { p in (0..<10).map { "p\(p)-\($0)" } })
    }

    // MARK: - Migrations

    /// A database a release before the indexes left, with its history, gets them on open
    /// and keeps every row.
    @Test func aDatabaseFromBeforeTheIndexesGetsThemOnOpen() throws {
        let directory = NSTemporaryDirectory() + "gantry-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/gantry.sqlite"
        do {
            let old = try SQLiteStore(path: path, migratingUpTo: "v3: drop lost_count")
            for index in 0..<20 {
                let pipeline = Fixture.pipeline("p\(index)", at: Fixture.t0.addingTimeInterval(Double(index)))
                try old.insert(
                    pipeline: pipeline,
                    jobs: [Fixture.job("j\(index)", pipeline: pipeline, position: 0, state: index < 18 ? .succeeded : .running)])
            }
            #expect(try old.queryPlan("SELECT * FROM jobs ORDER BY created_at DESC, position DESC LIMIT 5").contains("USE TEMP B-TREE FOR ORDER BY"))
        }
        let upgraded = try SQLiteStore(path: path)
        let newest = try #require(SQLiteStore.newestJobsQuery(states: nil, limit: 5))
        #expect(try upgraded.queryPlan(newest.sql, values: newest.arguments) == ["SCAN jobs USING INDEX jobs_by_creation"])
        #expect(try upgraded.jobs(states: nil, limit: 2).map(\.id) == ["j19", "j18"])
        #expect(try upgraded.unfinishedJobs().map(\.id) == ["j18", "j19"])
        // Reopening applies nothing more and still reads the same.
        let reopened = try SQLiteStore(path: path)
        #expect(try reopened.jobs(states: [.succeeded], limit: 1).map(\.id) == ["j17"])
    }
}
