import Foundation

extension API {
    /// One line of `GET /v1/pipelines`: a pipeline without its jobs, with how many of its
    /// jobs are in each state, so a listing of fifty 1,000-job pipelines stays small.
    public struct PipelineSummary: Codable, Sendable, Equatable {
        public var id: String
        /// `running` while any job is unfinished, then `succeeded`, `failed` or `cancelled`
        /// (as `GET /v1/pipelines/{id}` says).
        public var state: String
        public var createdAt: Date
        public var repository: String
        public var commit: String
        public var branch: String
        public var tag: String?
        public var message: String?
        public var source: String?
        public var rebuildOf: String?
        /// The identity that submitted it, when recorded.
        public var submittedBy: String?
        /// Jobs by state (`queued`, `running`, `succeeded`, …); states with none are absent.
        public var jobCounts: [String: Int]
        /// When its first job started; nil before any did.
        public var startedAt: Date?
        /// When its last job finished, once every job has.
        public var finishedAt: Date?

        public init(
            id: String, state: String, createdAt: Date, repository: String, commit: String, branch: String, tag: String?,
            message: String?, source: String?, rebuildOf: String?, submittedBy: String?, jobCounts: [String: Int],
            startedAt: Date?, finishedAt: Date?
        ) {
            self.id = id
            self.state = state
            self.createdAt = createdAt
            self.repository = repository
            self.commit = commit
            self.branch = branch
            self.tag = tag
            self.message = message
            self.source = source
            self.rebuildOf = rebuildOf
            self.submittedBy = submittedBy
            self.jobCounts = jobCounts
            self.startedAt = startedAt
            self.finishedAt = finishedAt
        }
    }

    /// `GET /v1/pipelines[?state=&branch=&repository=&limit=&cursor=]`: newest first.
    public struct PipelineList: Codable, Sendable, Equatable {
        public var pipelines: [PipelineSummary]
        /// Pass as `?cursor=` for the next page; nil when there is none. Opaque.
        ///
        /// A page can hold fewer than `limit` pipelines and still have a cursor: with a
        /// `state` filter, one request reads a bounded number of pipelines.
        public var nextCursor: String?

        public init(pipelines: [PipelineSummary], nextCursor: String?) {
            self.pipelines = pipelines
            self.nextCursor = nextCursor
        }
    }
}
