import Foundation
import Testing

@testable import GantryCoordinator

/// `GET /v1/deployments` pages (`DeploymentStore.deploymentRows(before:)`): a page goes on
/// exactly where the last one ended, deployments finished in the same instant included.
@Suite("Deployment pages", .timeLimit(.minutes(1)))
struct DeploymentPagesTests {
    let scratch: ScratchStore
    var store: SQLiteStore { scratch.store as! SQLiteStore }

    init() throws {
        scratch = try StoreFactory.sqlite.make()
    }

    @Test func pagesTogetherAreTheWholeListingInOrder() throws {
        var writes: [StoreWrite] = []
        for index in 0..<12 {
            let pipeline = Fixture.pipeline("p\(index)", at: Fixture.t0.addingTimeInterval(Double(index)))
            var job = Fixture.job("d\(index)", pipeline: pipeline, position: 0, state: index % 3 == 0 ? .failed : .succeeded)
            job.environment = index % 2 == 0 ? "production" : "staging"
            // Pairs finish in the same instant: only the rowid orders them.
            job.finishedAt = Fixture.t0.addingTimeInterval(100 + Double(index / 2))
            job.startedAt = job.finishedAt
            writes.append(.insertPipeline(pipeline, jobs: [job]))
        }
        try store.commit(StoreBatch(writes))
        for environment in [nil, "production"] as [String?] {
            let whole = try store.deploymentRows(environment: environment, project: nil, since: nil, limit: 100).map(\.job.id)
            #expect(whole.count == (environment == nil ? 12 : 6))
            for size in [1, 5] {
                var seen: [String] = []
                var before: Int64?
                for _ in 0..<100 {
                    let page = try store.deploymentRows(environment: environment, project: nil, since: nil, before: before, limit: size)
                    seen += page.map(\.job.id)
                    guard page.count == size, let last = page.last else { break }
                    before = last.rowid
                }
                #expect(seen == whole, "\(environment ?? "all"), pages of \(size)")
            }
        }
    }
}
