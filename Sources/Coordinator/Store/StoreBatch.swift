import Foundation

/// One write the job lifecycle asks the store to make.
public enum StoreWrite: Sendable, Equatable {
    /// A new pipeline with all its jobs.
    case insertPipeline(StoredPipeline, jobs: [StoredJob])
    /// Steps uploaded into a running pipeline (`gantry pipeline upload`): new job rows,
    /// the pipeline's upload count, and the dependencies of the waiting jobs that now
    /// also wait for the uploaded steps.
    case appendJobs(PipelineAppend)
    /// A job's lifecycle columns (state, attempt, agent, outcome, times, log length); the
    /// step's definition never changes after insert. Fails the batch if the job is unknown.
    case updateJob(StoredJob)
    /// Inserts an attempt, or updates it keeping the `leased_at` of its first write.
    case saveAttempt(StoredAttempt)
    /// One compressed log chunk at `offset` (equal to the stored length) that also moves
    /// the job's `log_length` to `offset + rawLength` if `attempt` is still its attempt.
    case appendLog(LogAppend)
    /// Pipeline meta-data set in the same transaction as a lifecycle change (an approved
    /// block's fields).
    case setMetaData([StoredMetaData])
    /// Events for outgoing webhooks, written with the state change they report
    /// (`NotificationEvents`); the notification service fans them out later.
    case notificationEvents([StoredNotificationEvent])
}

/// What one upload adds to a pipeline's rows (`StoreWrite.appendJobs`).
public struct PipelineAppend: Sendable, Equatable {
    public var pipelineID: String
    public var jobs: [StoredJob]
    /// The pipeline's upload count after this one.
    public var uploads: Int
    /// Waiting jobs whose `depends_on` grew, with the whole new list.
    public var dependencies: [String: [String]]

    public init(pipelineID: String, jobs: [StoredJob], uploads: Int, dependencies: [String: [String]]) {
        self.pipelineID = pipelineID
        self.jobs = jobs
        self.uploads = uploads
        self.dependencies = dependencies
    }
}

/// A log chunk as it arrived from the agent: deflate-compressed, already inflate-checked.
public struct LogAppend: Sendable, Equatable {
    public var jobID: String
    public var attempt: Int
    public var offset: Int
    public var rawLength: Int
    public var data: Data

    public init(jobID: String, attempt: Int, offset: Int, rawLength: Int, data: Data) {
        self.jobID = jobID
        self.attempt = attempt
        self.offset = offset
        self.rawLength = rawLength
        self.data = data
    }
}

/// Every write of one lifecycle turn, committed in one transaction.
public struct StoreBatch: Sendable, Equatable {
    public var writes: [StoreWrite]

    public init(_ writes: [StoreWrite] = []) { self.writes = writes }

    public var isEmpty: Bool { writes.isEmpty }

    public mutating func append(_ write: StoreWrite) { writes.append(write) }
    public mutating func append(contentsOf other: StoreBatch) { writes.append(contentsOf: other.writes) }
}
