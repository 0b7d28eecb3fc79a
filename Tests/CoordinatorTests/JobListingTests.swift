import Foundation
import Testing

@testable import GantryCoordinator

/// `GET /v1/jobs` pages (`JobListing`): a cursor continues exactly where its page ended,
/// ties in creation time included, on every store; on SQLite the continued range is still
/// an index search.
@Suite("Job listing pages", .timeLimit(.minutes(1)))
struct JobListingTests {

    /// 40 pipelines of 5 jobs; pipelines come in pairs created at the same instant, so
    /// creation time and position tie and only the rowid orders them.
    static func fill(_ store: any CoordinatorStore) throws {
        var writes: [StoreWrite] = []
        for index in 0..<40 {
            let pipeline = Fixture.pipeline("p\(index)", at: Fixture.t0.addingTimeInterval(Double(index / 2)))
            writes.append(
                .insertPipeline(
                    pipeline,
                    jobs: (0..<5).map { position in
                        Fixture.job("p\(index)-\(position)", pipeline: pipeline, position: position, state: position == 2 ? .failed : .succeeded)
                    }))
        }
        try store.commit(StoreBatch(writes))
    }

    static func walk(_ store: any JobListingStore, states: [JobState]?, pageSize: Int) throws -> [String] {
        var seen: [String] = []
        var cursor: JobListing.Cursor?
        for _ in 0..<1_000 {
            let page = try store.jobPage(states: states, before: cursor, limit: pageSize)
            seen += page.map(\.job.id)
            guard page.count == pageSize, let last = page.last else { break }
            cursor = last.cursor
        }
        return seen
    }

    @Test(arguments: StoreFactory.all, [nil, [JobState.failed], [.failed, .succeeded]] as [[JobState]?])
    func pagesTogetherAreTheWholeListingInOrder(_ factory: StoreFactory, _ states: [JobState]?) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any CoordinatorStore & JobListingStore)
        try Self.fill(store)
        let whole = try store.jobs(states: states, limit: 10_000).map(\.id)
        #expect(whole.count == (states == [.failed] ? 40 : 200))
        for pageSize in [1, 7, 50] {
            #expect(try Self.walk(store, states: states, pageSize: pageSize) == whole, "pages of \(pageSize)")
        }
    }

    @Test func aContinuedPageIsStillAnIndexSearch() throws {
        let scratch = try StoreFactory.sqlite.make()
        let store = try #require(scratch.store as? SQLiteStore)
        try Self.fill(store)
        for states in [nil, [JobState.failed, .queued]] as [[JobState]?] {
            let query = try #require(SQLiteStore.newestJobsQuery(states: states, limit: 50, before: 17))
            let plan = try store.queryPlan(query.sql, values: query.arguments)
            #expect(SQLiteStoreTests.costlyLines(plan).isEmpty, "\(plan)")
            #expect(plan.contains { $0.hasPrefix("SEARCH jobs USING INDEX jobs_by") }, "\(plan)")
        }
    }

    @Test func cursorsAreOpaqueButChecked() {
        #expect(JobListing.Cursor(text: "j42") == JobListing.Cursor(rowid: 42))
        #expect(JobListing.Cursor(rowid: 42).text == "j42")
        for text in ["", "j", "j0", "j-1", "p42", "j42x", "j" + String(repeating: "9", count: 30)] {
            #expect(JobListing.Cursor(text: text) == nil, "\(text)")
        }
    }
}
