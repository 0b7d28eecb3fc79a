import GantryProtocol
import Synchronization

/// The `gantry: …` notes transfers leave for the step's log. Collected here and written by
/// `JobRunner` through the job's masker (a note may quote a path or a message holding a
/// secret), in order, when each phase ends.
public final class TransferLog: Sendable {
    private let lines = Mutex<[String]>([])

    public init() {}

    func add(_ line: String) { lines.withLock { $0.append(line) } }

    /// The notes so far, emptied.
    public func take() -> [String] { lines.withLock { lines in defer { lines = [] }; return lines } }
}

/// The transfers of one job around its commands (docs/pipeline.md, "Artifacts and
/// caches"): before them the cache is restored and `download:` fetched; after them the
/// artifacts are uploaded and the cache saved.
///
/// Where this runs: `JobRunner.run` is awaited in a `Task` that `AgentRuntime.accept(_:)`
/// starts on the `AgentRuntime` actor, but `run` is a nonisolated async function of a
/// Sendable struct, so (Swift 6 language mode, `NonisolatedNonsendingByDefault` not
/// enabled in Package.swift) it executes on the global concurrent executor, off the actor.
/// Heartbeats are sent by the `AgentConnection` actor (asking `AgentRuntime.heartbeat()`),
/// and log acknowledgements are handled by `AgentRuntime` and each job's `LogStreamer`,
/// all over the agent connection's channel on `MultiThreadedEventLoopGroup.singleton`.
/// Transfers hold none of those: they open their own HTTP connections on their own event
/// loop (`TransferHTTPClient.eventLoopGroup`), hash uploads and write and hash downloads
/// on NIO's blocking pool, and write the log only through `JobRunner`'s masker between
/// phases, so a slow or large transfer of one job delays neither the heartbeats nor the
/// log acknowledgements of any job.
struct JobTransfers: Sendable {
    let plan: TransferPlan
    let client: TransferHTTPClient?
    let clientProblem: TransferError?
    let files: WorkDirectoryFiles
    let spec: JobRunner.Spec
    let archivePath: String
    let stepUser: StepUser?
    let control: ProcessGroupControl
    let log = TransferLog()

    /// `caFile`: the agent's pinned CA when the lease says the API serves the
    /// coordinator's certificate, else nil (the system's roots).
    init(
        spec: JobRunner.Spec, workDirectory: String, caFile: String?, stepUser: StepUser?, control: ProcessGroupControl,
        configuration: TransferHTTPClient.Configuration = .init()
    ) {
        self.spec = spec
        self.plan = spec.transfers
        self.files = WorkDirectoryFiles(root: workDirectory, owner: stepUser.map { ($0.uid, $0.gid) })
        self.archivePath = "\(workDirectory).cache.tgz"
        self.stepUser = stepUser
        self.control = control
        var client: TransferHTTPClient?
        var problem: TransferError?
        if !spec.transfers.isEmpty {
            do throws(TransferError) {
                guard !spec.apiURL.isEmpty else { throw .invalidAPIURL("the lease names no API URL") }
                let endpoint = try TransferEndpoint(apiURL: spec.apiURL)
                client = try TransferHTTPClient(
                    endpoint: endpoint, token: spec.jobToken, caFile: spec.apiUsesCoordinatorCA ? caFile : nil,
                    configuration: configuration)
            } catch {
                problem = error
            }
        }
        self.client = client
        self.clientProblem = problem
    }

    /// Before the commands: the cache (never fails the job), then the downloads. Returns
    /// the cache key to save under after success, if any, or throws what failed the
    /// downloads.
    func beforeCommands() async throws(TransferError) -> CacheTransfer.Restored? {
        var restored: CacheTransfer.Restored?
        if let cache = plan.cache {
            if let client {
                let transfer = CacheTransfer(
                    client: client, files: files, jobID: spec.jobID, cache: cache, archivePath: archivePath,
                    stepUser: stepUser, control: control, log: log)
                restored = try? await stoppable { await transfer.restore() }
            } else if let clientProblem {
                log.add("gantry: cache not restored: \(clientProblem)\n")
            }
        }
        if control.stopReason != nil { throw .stopped }
        if !plan.downloads.isEmpty {
            guard let client else { throw clientProblem ?? .noJobToken }
            let transfers = ArtifactTransfers(
                client: client, files: files, jobID: spec.jobID, pipelineID: spec.pipelineID, log: log)
            try await stoppable { try await transfers.download(plan.downloads) }
        }
        return restored
    }

    /// After the commands: the artifacts (when the run succeeded, or always), then the
    /// cache when the run succeeded and its key missed. Throws what failed the uploads.
    func afterCommands(succeeded: Bool, cache restored: CacheTransfer.Restored?) async throws(TransferError) {
        if !plan.artifacts.isEmpty && (succeeded || plan.artifactsAlways) {
            guard let client else { throw clientProblem ?? .noJobToken }
            let transfers = ArtifactTransfers(
                client: client, files: files, jobID: spec.jobID, pipelineID: spec.pipelineID, log: log)
            try await stoppable { try await transfers.upload(plan.artifacts) }
        }
        if succeeded, let cache = plan.cache, let restored, restored.saveAfterSuccess, let client {
            let transfer = CacheTransfer(
                client: client, files: files, jobID: spec.jobID, cache: cache, archivePath: archivePath,
                stepUser: stepUser, control: control, log: log)
            _ = try? await stoppable { await transfer.save(key: restored.key) }
        }
    }

    /// `work`, cancelled when the step is stopped (cancel, timeout): `ProcessGroupControl`
    /// only records the reason, so a watcher polls it every 100 ms and cancels the work,
    /// which closes its connection (`TransferHTTPClient.send`).
    func stoppable<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws(TransferError) -> T {
        let control = self.control
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await work() }
                group.addTask {
                    while control.stopReason == nil { try await Task.sleep(for: .milliseconds(100)) }
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let value = first else { throw TransferError.stopped }
                return value
            }
        } catch let error as TransferError {
            throw error
        } catch is CancellationError {
            throw .stopped
        } catch {
            throw .connection("\(error)")
        }
    }
}
