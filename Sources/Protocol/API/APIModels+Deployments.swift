import Foundation

extension API {
    /// One deployment: a finished job of a step with `environment:`, with what it
    /// deployed (the pipeline's commit and the artifact digests the job downloaded), who
    /// let it through (the pipeline's approved blocks) and how it ended.
    public struct Deployment: Codable, Sendable, Equatable {
        /// The deploying job's id.
        public var id: String
        public var environment: String
        public var pipelineId: String
        public var step: String
        /// The job's final state: `succeeded`, `failed`, `timed_out`, `cancelled`.
        public var state: String
        public var attempt: UInt32
        public var repository: String?
        public var commit: String?
        public var branch: String?
        public var startedAt: Date?
        public var finishedAt: Date?
        public var durationSeconds: Double?
        /// The sha256 of every artifact the job downloaded from its pipeline or the one it
        /// promotes.
        public var artifacts: [String]
        public var approvals: [DeploymentApproval]

        public init(
            id: String, environment: String, pipelineId: String, step: String, state: String, attempt: UInt32,
            repository: String?, commit: String?, branch: String?, startedAt: Date?, finishedAt: Date?,
            durationSeconds: Double?, artifacts: [String], approvals: [DeploymentApproval]
        ) {
            self.id = id
            self.environment = environment
            self.pipelineId = pipelineId
            self.step = step
            self.state = state
            self.attempt = attempt
            self.repository = repository
            self.commit = commit
            self.branch = branch
            self.startedAt = startedAt
            self.finishedAt = finishedAt
            self.durationSeconds = durationSeconds
            self.artifacts = artifacts
            self.approvals = approvals
        }
    }

    /// A block of the deployment's pipeline that someone approved.
    public struct DeploymentApproval: Codable, Sendable, Equatable {
        public var step: String
        public var by: String
        public var at: Date?

        public init(step: String, by: String, at: Date?) {
            self.step = step
            self.by = by
            self.at = at
        }
    }

    public struct DeploymentList: Codable, Sendable, Equatable {
        /// Newest first.
        public var deployments: [Deployment]

        public init(deployments: [Deployment]) {
            self.deployments = deployments
        }
    }
}
