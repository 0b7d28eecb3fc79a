import Foundation
import GRDB
import Testing

@testable import GantryCoordinator

/// `GET /v1/deployments` pages (`DeploymentStore.deploymentRows(before:)`): a page goes on
/// exactly where the last one ended, deployments finished in the same instant included.
@Suite("Deployment pages", .timeLimit(.minutes(1)))
struct DeploymentPagesTests {
    @Test(arguments: StoreFactory.all) func pagesTogetherAreTheWholeListingInOrder(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any CoordinatorStore & DeploymentStore)
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

    /// A project's deployments are those of the pipelines its webhook and its schedules
    /// started, and the rollbacks that promote one of them; each row carries its digests.
    @Test(arguments: StoreFactory.all) func aProjectsDeploymentsCarryTheirDigests(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any CoordinatorStore & DeploymentStore)
        var writes: [StoreWrite] = []
        for (index, id) in ["hooked", "scheduled", "rolled", "other"].enumerated() {
            let pipeline = Fixture.pipeline(id, at: Fixture.t0)
            var job = Fixture.job("\(id)-deploy", pipeline: pipeline, position: 0, state: .succeeded)
            job.environment = "production"
            job.finishedAt = Fixture.t0.addingTimeInterval(Double(10 * (index + 1)))
            writes.append(.insertPipeline(pipeline, jobs: [job]))
        }
        try store.commit(StoreBatch(writes))
        try scratch.execute("UPDATE pipelines SET source = 'rollback', artifacts_from = 'hooked' WHERE id = 'rolled'")
        try scratch.execute(
            """
            INSERT INTO projects (name, repository, pipeline_file, branches, tags, sealed_secret, key_id, created_by, created_at)
            VALUES ('app', 'https://git.example.com/app.git', '.gantry.yml', '[]', '[]', ?, 'k1', 'alice', ?)
            """, [Data([1, 2, 3]).databaseValue, Fixture.t0.databaseValue])
        try scratch.execute(
            """
            INSERT INTO webhook_deliveries (project, delivery_id, pipeline_id, ref, "commit", body_sha256, owner, received_at)
            VALUES ('app', 'd1', 'hooked', 'refs/heads/main', 'abc', 'sha', 'c1', ?)
            """, [Fixture.t0.databaseValue])
        try scratch.execute(
            """
            INSERT INTO schedules (id, project, cron, branch, next_run_at, created_by, created_at)
            VALUES ('s1', 'app', '0 * * * *', 'main', ?, 'alice', ?)
            """, [Fixture.t0.databaseValue, Fixture.t0.databaseValue])
        try scratch.execute(
            "INSERT INTO schedule_runs (schedule_id, tick, pipeline_id, owner, claimed_at) VALUES ('s1', ?, 'scheduled', 'c1', ?)",
            [Fixture.t0.databaseValue, Fixture.t0.databaseValue])
        for digest in ["ff00", "00ff"] {
            try scratch.execute(
                """
                INSERT INTO artifact_deployments (sha256, pipeline_id, job_id, step_key, environment, at)
                VALUES (?, 'hooked', 'hooked-deploy', 'build', 'production', ?)
                """, [digest.databaseValue, Fixture.t0.databaseValue])
        }

        let rows = try store.deploymentRows(environment: "production", project: "app", since: nil, limit: 10)
        #expect(rows.map(\.job.id) == ["rolled-deploy", "scheduled-deploy", "hooked-deploy"])
        let hooked = try #require(rows.last)
        #expect(hooked.artifacts == ["00ff", "ff00"])
        #expect(hooked.repository == "https://git.example.com/app.git" && hooked.branch == "main" && hooked.source == "api")
        #expect(hooked.pipelineCreatedAt == Fixture.t0 && hooked.job.finishedAt == Fixture.t0.addingTimeInterval(10))
        #expect(rows.first?.source == "rollback" && rows.first?.artifacts == [])
        #expect(try store.deployedDigests(jobID: "hooked-deploy") == ["00ff", "ff00"])
        #expect(try store.deployedDigests(jobID: "other-deploy").isEmpty)
        let since = try store.deploymentRows(environment: nil, project: nil, since: Fixture.t0.addingTimeInterval(30), limit: 10)
        #expect(since.map(\.job.id) == ["other-deploy", "rolled-deploy"])
        #expect(try store.deploymentRows(environment: "staging", project: nil, since: nil, limit: 10).isEmpty)
        #expect(try store.deploymentRows(environment: nil, project: "nothing", since: nil, limit: 10).isEmpty)
    }
}
