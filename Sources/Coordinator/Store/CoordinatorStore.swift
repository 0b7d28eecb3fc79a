import Foundation

/// The coordinator's durable state: pipelines, jobs, attempts and compressed logs.
///
/// The job lifecycle (`JobLifecycle`) decides; the `CoordinatorCore` actor hands each
/// turn's writes to `commit(_:)` as one `StoreBatch` and sends acknowledgements only after
/// it returns, so a crash never loses anything an agent or API caller was told is stored.
/// Reads serve the API, the log followers and the reload at start. `SQLiteStore` is the
/// embedded back end; every back end must pass `StoreConformanceTests`.
public protocol CoordinatorStore: Sendable {
    /// Applies every write of one lifecycle turn, in order, atomically: all or nothing.
    func commit(_ batch: StoreBatch) throws

    func pipeline(id: String) throws -> StoredPipeline?
    func pipelineExists(id: String) throws -> Bool
    /// A pipeline's jobs in position order.
    func jobs(pipelineID: String) throws -> [StoredJob]
    func job(id: String) throws -> StoredJob?
    /// The newest jobs first (by creation, then position), optionally only in `states`.
    func jobs(states: [JobState]?, limit: Int) throws -> [StoredJob]
    /// Jobs that are not terminal, in submission order: what the coordinator reloads at start.
    func unfinishedJobs() throws -> [StoredJob]
    func attempts(jobID: String) throws -> [StoredAttempt]
    /// Compressed chunks of an attempt's log whose end lies beyond `from`, in order.
    func logChunks(jobID: String, attempt: Int, from: Int, limit: Int) throws -> [LogChunkRow]
}

extension CoordinatorStore {
    public func jobs(states: [JobState]? = nil, limit: Int = 200) throws -> [StoredJob] {
        try jobs(states: states, limit: limit)
    }

    public func logChunks(jobID: String, attempt: Int, from: Int) throws -> [LogChunkRow] {
        try logChunks(jobID: jobID, attempt: attempt, from: from, limit: 64)
    }

    /// Stores a pipeline and all its jobs in one transaction.
    public func insert(pipeline: StoredPipeline, jobs: [StoredJob]) throws {
        try commit(StoreBatch([.insertPipeline(pipeline, jobs: jobs)]))
    }

    /// Saves several jobs' lifecycle columns and, optionally, an attempt, atomically.
    public func update(_ jobs: [StoredJob], attempt: StoredAttempt? = nil) throws {
        try commit(StoreBatch(jobs.map(StoreWrite.updateJob) + (attempt.map { [.saveAttempt($0)] } ?? [])))
    }
}
