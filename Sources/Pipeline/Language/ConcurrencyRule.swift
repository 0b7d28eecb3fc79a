/// `concurrency: {group: deploy-production, limit: 1, cancel_in_progress: false}`: at most
/// `limit` jobs of the group hold a lease at once, across every pipeline, admitted in the
/// order they became runnable. With `cancelInProgress`, a job entering the group cancels
/// the group's older jobs instead of waiting behind them.
public struct ConcurrencyRule: Sendable, Equatable, Codable {
    /// 1-100 ASCII letters, digits, `.`, `_`, `-`, `/` and `:`, after `{{matrix.*}}`
    /// interpolation.
    public var group: String
    /// 1 to `PipelineLimits.maximumConcurrencyLimit`.
    public var limit: Int
    public var cancelInProgress: Bool

    public init(group: String, limit: Int = 1, cancelInProgress: Bool = false) {
        self.group = group
        self.limit = limit
        self.cancelInProgress = cancelInProgress
    }
}
