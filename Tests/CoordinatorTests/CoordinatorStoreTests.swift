import Foundation
@testable import GantryCoordinator
import Testing

/// The store's targeted lifecycle update must save exactly what the whole-row update did.
@Suite("Coordinator store")
final class CoordinatorStoreTests {
    let directory: String
    let store: SQLiteStore

    init() throws {
        directory = NSTemporaryDirectory() + "gantry-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try SQLiteStore(path: directory + "/gantry.sqlite")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Dates survive SQLite at millisecond precision, so the fixture uses whole seconds.
    static let now = Date(timeIntervalSince1970: 1_795_000_000)

    func insertJob() throws -> StoredJob {
        let pipeline = StoredPipeline(
            id: "p", file: "ci.yml", yaml: "steps: []", repository: "", commit: "", branch: "", env: [:], createdAt: Self.now)
        let job = StoredJob(
            id: "j", pipelineId: "p", position: 0, key: "build", name: "build", state: .queued, commands: ["make"],
            env: ["A": "1"], agents: ["os": "linux"], dependsOn: [], timeoutSeconds: 60, cancelGraceSeconds: 10,
            retry: [RetryRule(.agentLost, limit: 2)], retryCounts: [:], cancelReason: nil, attempt: 0,
            agentId: nil, exitStatus: nil, reason: nil, createdAt: Self.now, queuedAt: Self.now, startedAt: nil,
            finishedAt: nil, logLength: 0)
        try store.insert(pipeline: pipeline, jobs: [job])
        return job
    }

    @Test func lifecycleUpdateSavesEveryChangedColumn() throws {
        var job = try insertJob()
        job.state = .failed
        job.retryCounts = ["agent_lost": 1, "exit_status:*": 2]
        job.cancelReason = "stopped by alice"
        job.attempt = 3
        job.agentId = "host/2"
        job.exitStatus = 2
        job.reason = "exit status 2"
        job.startedAt = Self.now.addingTimeInterval(1)
        job.finishedAt = Self.now.addingTimeInterval(2)
        job.logLength = 4096
        try store.update([job])
        #expect(try store.job(id: "j") == job)

        job.retryCounts = [:]
        job.cancelReason = nil
        job.exitStatus = nil
        try store.update([job])
        #expect(try store.job(id: "j") == job, "cleared columns are saved as NULL / {}")
    }

    @Test func updatingAJobThatIsNotStoredFails() throws {
        var job = try insertJob()
        job.id = "missing"
        #expect(throws: (any Error).self) { try self.store.update([job]) }
    }
}
