/// A parsed, validated pipeline file: what `PipelineParser` produces and the store expands
/// into jobs. Only the first subset of the format (docs/pipeline.md) exists so far.
public struct PipelineDefinition: Sendable, Equatable {
    public var env: [String: String]
    public var steps: [Step]

    public struct Step: Sendable, Equatable {
        /// Unique within the pipeline; what `depends_on` refers to.
        public var key: String
        /// Shown in logs and listings; defaults to the key.
        public var name: String
        /// Run in order via `/bin/sh -c`, stopping at the first failure.
        public var commands: [String]
        public var env: [String: String]
        /// Agent labels this step needs (all must match).
        public var agents: [String: String]
        /// Seconds; nil means no timeout.
        public var timeoutSeconds: Int?
        /// Seconds between SIGTERM and SIGKILL when the step is cancelled or times out.
        public var cancelGraceSeconds: Int
        public var dependsOn: [String]
        /// When a failed or lost attempt is retried automatically.
        public var retry: [RetryRule]
    }
}

/// One `retry.automatic` entry: retry up to `limit` times when an attempt ends this way.
public struct RetryRule: Codable, Sendable, Equatable, Hashable {
    public enum Condition: Codable, Sendable, Equatable, Hashable {
        /// The agent vanished (missed heartbeats past the lease TTL, or restarted).
        case agentLost
        /// The step failed with this exit status.
        case exitStatus(Int)
        /// The step failed with any non-zero exit status.
        case anyExitStatus
    }

    public var condition: Condition
    public var limit: Int

    public init(_ condition: Condition, limit: Int) {
        self.condition = condition
        self.limit = limit
    }

    /// What a step gets without a `retry:` key: an agent that vanishes is not the
    /// step's fault, so it is retried twice.
    public static let defaults = [RetryRule(.agentLost, limit: 2)]

    /// Stable name used to count retries per rule.
    public var key: String {
        switch condition {
        case .agentLost: return "agent_lost"
        case .exitStatus(let status): return "exit_status:\(status)"
        case .anyExitStatus: return "exit_status:*"
        }
    }
}

/// What is wrong with a pipeline file, and where.
public struct PipelineError: Error, Equatable, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int?
    public var column: Int?
    public var message: String

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        return "\(location): \(message)"
    }
}
