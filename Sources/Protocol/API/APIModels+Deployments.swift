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
        /// Pass as `?cursor=` for the next page; nil when there is none. Opaque.
        public var nextCursor: String?

        public init(deployments: [Deployment], nextCursor: String? = nil) {
            self.deployments = deployments
            self.nextCursor = nextCursor
        }
    }
}

extension API {
    /// `GET /v1/metrics/dora`: the delivery metrics of each environment over a window.
    public struct DeliveryMetrics: Codable, Sendable, Equatable {
        public var since: Date
        public var until: Date
        public var environments: [EnvironmentMetrics]

        public init(since: Date, until: Date, environments: [EnvironmentMetrics]) {
            self.since = since
            self.until = until
            self.environments = environments
        }
    }

    public struct EnvironmentMetrics: Codable, Sendable, Equatable {
        public var environment: String
        public var deployments: Int
        public var successes: Int
        public var failures: Int
        /// Successful deployments per day of the window.
        public var deploymentsPerDay: Double
        /// Pipeline creation (the push) to successful deployment, in seconds.
        public var leadTimeMedianSeconds: Double?
        public var leadTimeP90Seconds: Double?
        /// Failed (or timed-out) deployments over all finished ones (cancelled excluded).
        public var changeFailureRate: Double?
        /// A failed deployment to the next successful one, in seconds.
        public var timeToRestoreMedianSeconds: Double?
        /// Failures not followed by a success within the window.
        public var unrestoredFailures: Int

        public init(
            environment: String, deployments: Int, successes: Int, failures: Int, deploymentsPerDay: Double,
            leadTimeMedianSeconds: Double?, leadTimeP90Seconds: Double?, changeFailureRate: Double?,
            timeToRestoreMedianSeconds: Double?, unrestoredFailures: Int
        ) {
            self.environment = environment
            self.deployments = deployments
            self.successes = successes
            self.failures = failures
            self.deploymentsPerDay = deploymentsPerDay
            self.leadTimeMedianSeconds = leadTimeMedianSeconds
            self.leadTimeP90Seconds = leadTimeP90Seconds
            self.changeFailureRate = changeFailureRate
            self.timeToRestoreMedianSeconds = timeToRestoreMedianSeconds
            self.unrestoredFailures = unrestoredFailures
        }
    }
}

extension API {
    /// `POST /v1/environments/{name}/rollback`.
    public struct Rollback: Codable, Sendable, Equatable {
        /// The deployment (its job id) whose step and artifacts to deploy again.
        public var to: String

        public init(to: String) {
            self.to = to
        }
    }
}
