import Foundation

/// When a failed delivery is tried again: exponential from `base`, capped, with jitter so
/// that the deliveries a receiver's outage piled up do not all come back in the same
/// second when it recovers. Pure: the random fraction is passed in.
///
/// With the defaults, the eight attempts of a delivery span about 8 minutes (4 s, 8 s,
/// 16 s … 256 s between them, each between half and all of that): long enough to ride out
/// a receiver's deploy or restart, short enough that a pipeline's status is not reported
/// an hour late. A receiver down for longer loses those notifications, with `failed` and
/// the last error in the delivery log.
public struct NotificationBackoff: Sendable, Equatable {
    public var base: TimeInterval = 4
    public var cap: TimeInterval = 1800
    public var maximumAttempts = 8

    public init(base: TimeInterval = 4, cap: TimeInterval = 1800, maximumAttempts: Int = 8) {
        self.base = base
        self.cap = cap
        self.maximumAttempts = maximumAttempts
    }

    /// The wait after attempt `attempt` (1-based) failed, before jitter.
    public func ceiling(afterAttempt attempt: Int) -> TimeInterval {
        let exponent = Double(max(attempt, 1) - 1)
        return min(base * pow(2, min(exponent, 40)), cap)
    }

    /// The wait after attempt `attempt` failed, `jitter` in [0, 1] choosing a point in the
    /// upper half of the ceiling ("equal jitter": never less than half, never more).
    public func delay(afterAttempt attempt: Int, jitter: Double) -> TimeInterval {
        let ceiling = ceiling(afterAttempt: attempt)
        return ceiling / 2 + ceiling / 2 * min(max(jitter, 0), 1)
    }
}
