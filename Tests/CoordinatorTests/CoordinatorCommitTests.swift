import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Logging
import Synchronization
import Testing

/// The actor's one promise: nothing leaves before the transaction that holds it commits,
/// and a refused commit stops the coordinator instead of acknowledging what is not stored.
@Suite("Coordinator commits", .timeLimit(.minutes(1)))
final class CoordinatorCommitTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "gantry-commit-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A real SQLite store that records, at each commit, how many frames the watched session
    /// had been sent, and can be told to refuse commits.
    final class WatchingStore: CoordinatorStore, @unchecked Sendable {
        let inner: SQLiteStore
        let framesAtCommit = Mutex<[Int]>([])
        let refuse = Atomic<Bool>(false)
        let watched = Mutex<AgentSession?>(nil)

        init(path: String) throws { inner = try SQLiteStore(path: path) }

        struct Refused: Error {}

        func commit(_ batch: StoreBatch) throws {
            if refuse.load(ordering: .relaxed) { throw Refused() }
            let frames = watched.withLock { $0?.queuedFrames ?? 0 }
            framesAtCommit.withLock { $0.append(frames) }
            try inner.commit(batch)
        }
        func pipeline(id: String) throws -> StoredPipeline? { try inner.pipeline(id: id) }
        func pipelineExists(id: String) throws -> Bool { try inner.pipelineExists(id: id) }
        func jobs(pipelineID: String) throws -> [StoredJob] { try inner.jobs(pipelineID: pipelineID) }
        func job(id: String) throws -> StoredJob? { try inner.job(id: id) }
        func jobs(states: [JobState]?, limit: Int) throws -> [StoredJob] { try inner.jobs(states: states, limit: limit) }
        func unfinishedJobs() throws -> [StoredJob] { try inner.unfinishedJobs() }
        func attempts(jobID: String) throws -> [StoredAttempt] { try inner.attempts(jobID: jobID) }
        func logChunks(jobID: String, attempt: Int, from: Int, limit: Int) throws -> [LogChunkRow] {
            try inner.logChunks(jobID: jobID, attempt: attempt, from: from, limit: limit)
        }
    }

    func hello(_ id: String) -> Gantry_V1_Hello {
        .with {
            $0.minVersion = 1
            $0.maxVersion = 1
            $0.agentID = id
            $0.capacity = 1
        }
    }

    @Test func noFrameLeavesBeforeItsTransactionCommits() async throws {
        let store = try WatchingStore(path: directory + "/gantry.sqlite")
        let core = try CoordinatorCore(
            store: store, configuration: .init(heartbeatInterval: .seconds(1), leaseTTL: .seconds(15)), logger: Logger(label: "test"))
        let session = AgentSession(agentID: "h/1")
        store.watched.withLock { $0 = session }
        _ = try await core.hello(hello("h/1"), certificateName: "h", session: session).get()
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: session)
        // The submit commits the pipeline, the lease and its attempt in one transaction,
        // while the agent has been sent nothing yet; the lease follows.
        _ = try await core.submit(.init(yaml: "steps:\n  - command: make\n"))
        #expect(store.framesAtCommit.withLock { $0 } == [0])
        #expect(session.queuedFrames == 1)
    }

    @Test func aRefusedCommitStopsTheCoordinatorAndAcknowledgesNothing() async throws {
        let store = try WatchingStore(path: directory + "/gantry.sqlite")
        let stoppedBox = StopCounter()
        let core = try CoordinatorCore(
            store: store,
            configuration: .init(
                heartbeatInterval: .seconds(1), leaseTTL: .seconds(15), onStoreFailure: { _ in stoppedBox.count.add(1, ordering: .relaxed) }),
            logger: Logger(label: "test"))
        let session = AgentSession(agentID: "h/1")
        _ = try await core.hello(hello("h/1"), certificateName: "h", session: session).get()
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: session)
        store.refuse.store(true, ordering: .relaxed)
        await #expect(throws: CoordinatorStopped.self) { try await core.submit(.init(yaml: "steps:\n  - command: make\n")) }
        #expect(stoppedBox.count.load(ordering: .relaxed) == 1)
        #expect(session.queuedFrames == 0, "the lease of an uncommitted job never leaves")
        // Nothing after that is acknowledged either, even once the store would accept it.
        store.refuse.store(false, ordering: .relaxed)
        await core.receive(.with { $0.heartbeat = .with { $0.sentAtUnixMs = 1 } }, from: "h/1", session: session)
        await #expect(throws: CoordinatorStopped.self) { try await core.submit(.init(yaml: "steps:\n  - command: make\n")) }
        #expect(try store.unfinishedJobs().isEmpty)
    }

    /// A flood of writes commits as soon as the batch reaches its bound, without waiting
    /// for the scheduled flush: what waits in memory for a commit is bounded.
    @Test func aFullBatchCommitsAtOnce() async throws {
        let store = try WatchingStore(path: directory + "/gantry.sqlite")
        let core = try CoordinatorCore(
            store: store, configuration: .init(heartbeatInterval: .seconds(1), leaseTTL: .seconds(15)), logger: Logger(label: "test"))
        var output = LifecycleOutput()
        for index in 0..<CoordinatorCore.maximumPendingWrites {
            output.writes.append(.appendLog(.init(jobID: "j", attempt: 1, offset: index, rawLength: 1, data: Data([1]))))
        }
        await core.run(output)
        #expect(store.framesAtCommit.withLock { $0.count } == 1, "committed inside run, not later")
        #expect(try store.logChunks(jobID: "j", attempt: 1, from: 0, limit: 10).count == 10)
    }

    final class StopCounter: Sendable {
        let count = Atomic<Int>(0)
    }
}
