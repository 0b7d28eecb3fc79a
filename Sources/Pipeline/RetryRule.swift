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
