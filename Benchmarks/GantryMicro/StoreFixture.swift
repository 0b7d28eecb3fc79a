import Foundation
import GantryCoordinator

/// A fresh coordinator store in a temporary directory for the store benchmarks, and rows
/// to write into it.
///
/// `StoredJob`, `StoredPipeline` and `StoredAttempt` have no public memberwise initializer,
/// so rows are decoded from JSON templates through their public `Codable` conformance (the
/// same fields the coordinator fills in `CoordinatorCore.submit`), then given fresh ids.
enum StoreFixture {
    nonisolated(unsafe) static var store: SQLiteStore?
    nonisolated(unsafe) static var directory: String?

    static func open() throws {
        let path = NSTemporaryDirectory() + "gantry-micro-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        directory = path
        store = try SQLiteStore(path: path + "/gantry.sqlite")
    }

    static func close() throws {
        store = nil
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
        directory = nil
    }

    static func current() throws -> SQLiteStore {
        guard let store else { throw FixtureError("the store benchmark's setup did not run") }
        return store
    }

    static let reference = Date().timeIntervalSinceReferenceDate

    static func newPipeline() throws -> (StoredPipeline, StoredJob) {
        let pipelineID = UUID().uuidString.lowercased()
        let pipeline = try JSONDecoder().decode(
            StoredPipeline.self,
            from: Data(
                """
                {"id": "\(pipelineID)", "file": "bench.yml", "yaml": "steps:\\n  - command: make test\\n",
                 "repository": "https://git.example.com/app.git", "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
                 "branch": "main", "env": {}, "createdAt": \(reference)}
                """.utf8))
        var job = try JSONDecoder().decode(
            StoredJob.self,
            from: Data(
                """
                {"id": "\(UUID().uuidString.lowercased())", "pipelineId": "\(pipelineID)", "position": 0, "key": "unit",
                 "name": "unit", "state": "queued", "commands": ["make test"], "env": {"CI": "true"}, "agents": {"os": "linux"},
                 "dependsOn": [], "timeoutSeconds": 1200, "cancelGraceSeconds": 10, "retry": [], "retryCounts": {},
                 "attempt": 0, "createdAt": \(reference), "queuedAt": \(reference), "logLength": 0}
                """.utf8))
        job.retry = RetryRule.defaults
        return (pipeline, job)
    }

    static func attempt(_ job: StoredJob) throws -> StoredAttempt {
        try JSONDecoder().decode(
            StoredAttempt.self,
            from: Data(
                """
                {"jobId": "\(job.id)", "attempt": \(job.attempt), "agentId": "\(job.agentId ?? "bench/1")",
                 "state": "leased", "leasedAt": \(Date().timeIntervalSinceReferenceDate)}
                """.utf8))
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
