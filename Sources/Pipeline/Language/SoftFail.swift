/// `soft_fail:`: which failures of a step do not fail its pipeline. A soft-failed job
/// still shows `failed`, with outcome `passed`, and its dependents run as after a success.
public enum SoftFail: Sendable, Equatable, Codable {
    /// The default: every failure fails the pipeline.
    case never
    /// `soft_fail: true`: any failure or timeout is soft.
    case always
    /// `soft_fail: [{exit_status: 1}, 2]`: only these exit statuses (1-255) are soft.
    case exitStatuses([Int])

    /// Whether a job that ended failed (`exitStatus`, nil for a timeout or a lost agent)
    /// counts as soft.
    public func covers(exitStatus: Int?, timedOut: Bool) -> Bool {
        switch self {
        case .never: return false
        case .always: return true
        case .exitStatuses(let statuses): return !timedOut && exitStatus.map(statuses.contains) == true
        }
    }

    /// How the store keeps it: nil for never, `*` for always, `1,2` for statuses.
    public var storedText: String? {
        switch self {
        case .never: return nil
        case .always: return "*"
        case .exitStatuses(let statuses): return statuses.map(String.init).joined(separator: ",")
        }
    }

    /// The inverse of `storedText`; unreadable text reads as `never`, the safe side.
    public init(storedText text: String?) {
        guard let text, !text.isEmpty else {
            self = .never
            return
        }
        if text == "*" {
            self = .always
            return
        }
        let statuses = text.split(separator: ",").compactMap { Int($0) }.filter { (1...255).contains($0) }
        self = statuses.isEmpty ? .never : .exitStatuses(statuses)
    }
}
