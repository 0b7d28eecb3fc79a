import Foundation
import Testing

@testable import GantryCoordinator

/// `GET /v1/jobs` pages (`JobListing`): a cursor continues exactly where its page ended,
/// ties in creation time included, and the continued range is still an index search.
@Suite("Job listing pages", .timeLimit(.minutes(1)))
struct JobListingTests {
    let scratch: ScratchStore
    var store: SQLiteStore { scratch.store as! SQLiteStore }

    init() throws {
        scratch = try StoreFactory.sqlite.make()
    }

    /// 40 pipelines of 5 jobs; pipelines come in pairs created at the same instant, so
    /// creation time and position tie and only the rowid orders them.
    func fill() throws {
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

    func walk(states: [JobState]?, pageSize: Int) throws -> [String] {
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

    @Test(arguments: [nil, [JobState.failed], [.failed, .succeeded]] as [[JobState]?])
    func pagesTogetherAreTheWholeListingInOrder(_ states: [JobState]?) throws {
        try fill()
        let whole = try store.jobs(states: states, limit: 10_000).map(\.id)
        #expect(whole.count == (states == [.failed] ? 40 : 200))
        for pageSize in [1, 7, 50] {
            #expect(try walk(states: states, pageSize: pageSize) == whole, "pages of \(pageSize)")
        }
    }

    @Test func aContinuedPageIsStillAnIndexSearch() throws {
        try fill()
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
