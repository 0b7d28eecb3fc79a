import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Testing

/// `GET /v1/pipelines`: newest first, filters, and cursors that page through everything
/// exactly once, against every store back end.
@Suite("Pipeline listing", .timeLimit(.minutes(1)))
struct PipelineListingTests {
    /// Twelve pipelines, one a second: even ones on `main`, odd on `feature`; every third
    /// one failed, the last one still running, the rest succeeded.
    static func seed(_ store: any CoordinatorStore) throws -> [String] {
        var ids: [String] = []
        for n in 0..<12 {
            var pipeline = Fixture.pipeline("p\(n)", at: Fixture.t0.addingTimeInterval(Double(n)))
            pipeline.branch = n % 2 == 0 ? "main" : "feature"
            pipeline.repository = n < 6 ? "https://git.example.com/a.git" : "https://git.example.com/b.git"
            let state: JobState = n == 11 ? .running : n % 3 == 0 ? .failed : .succeeded
            var first = Fixture.job("p\(n)-a", pipeline: pipeline, position: 0, state: .succeeded)
            first.startedAt = pipeline.createdAt
            first.finishedAt = pipeline.createdAt.addingTimeInterval(1)
            first.outcome = .passed
            var second = Fixture.job("p\(n)-b", pipeline: pipeline, position: 1, state: state)
            if state.isTerminal {
                second.outcome = JobOutcome(state: state)
                second.finishedAt = pipeline.createdAt.addingTimeInterval(2)
            }
            try store.insert(pipeline: pipeline, jobs: [first, second])
            ids.append(pipeline.id)
        }
        return ids
    }

    static func listing(_ store: any CoordinatorStore) throws -> any PipelineListingStore {
        try #require(store as? any PipelineListingStore)
    }

    /// Follows cursors to the end, returning every page.
    static func pages(_ query: PipelineListing.Query, _ store: any PipelineListingStore) throws -> [[API.PipelineSummary]] {
        var pages: [[API.PipelineSummary]] = []
        var query = query
        for _ in 0..<100 {
            let page = try PipelineListing.list(query, store: store)
            pages.append(page.pipelines)
            guard let cursor = page.nextCursor else { return pages }
            let after: PipelineListing.Position = try #require(PipelineListing.Position(cursor: cursor))
            query.after = after
        }
        Issue.record("the cursors never ended")
        return pages
    }

    @Test(arguments: StoreFactory.all)
    func cursorsPageThroughEveryPipelineOnceNewestFirst(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let ids = try Self.seed(scratch.store)
        let pages = try Self.pages(PipelineListing.Query(limit: 5), Self.listing(scratch.store))
        #expect(pages.map(\.count) == [5, 5, 2])
        #expect(pages.flatMap { $0.map(\.id) } == ids.reversed())
        let newest = try #require(pages.first?.first)
        #expect(newest.state == "running" && newest.jobCounts == ["succeeded": 1, "running": 1] && newest.finishedAt == nil)
        let failed = try #require(pages.joined().first { $0.id == "p9" })
        #expect(failed.state == "failed" && failed.finishedAt != nil && failed.startedAt != nil)
    }

    @Test(arguments: StoreFactory.all)
    func filtersByStateBranchAndRepositoryAcrossPages(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        _ = try Self.seed(scratch.store)
        let store = try Self.listing(scratch.store)
        let failed = try Self.pages(PipelineListing.Query(states: [.failed], limit: 2), store).flatMap { $0.map(\.id) }
        #expect(failed == ["p9", "p6", "p3", "p0"])
        let mainB = try Self.pages(
            PipelineListing.Query(branch: "main", repository: "https://git.example.com/b.git", limit: 2), store
        ).flatMap { $0.map(\.id) }
        #expect(mainB == ["p10", "p8", "p6"])
        let both = try Self.pages(PipelineListing.Query(states: [.running, .failed], branch: "feature", limit: 10), store)
        #expect(both.flatMap { $0.map(\.id) } == ["p11", "p9", "p3"])
        #expect(try PipelineListing.list(PipelineListing.Query(states: [.cancelled]), store: store).pipelines.isEmpty)
    }

    @Test func cursorsAndQueriesFromCallersAreChecked() {
        #expect(PipelineListing.Position(cursor: "p42")?.sequence == 42)
        for bad in ["", "p", "p0", "p-1", "42", "p99999999999999999999", "x42", "p4 2"] {
            #expect(PipelineListing.Position(cursor: bad) == nil, "\(bad)")
        }
        #expect(PipelineState.derive([(state: JobState.succeeded, outcome: JobOutcome?.none)]) == .succeeded)
        #expect(PipelineState.derive([(state: .failed, outcome: .passed), (state: .cancelled, outcome: nil)]) == .cancelled)
        #expect(PipelineState.derive([(state: .failed, outcome: nil), (state: .blocked, outcome: nil)]) == .running)
    }
}
