/// Jittered exponential backoff for reconnects: each delay is uniform between `minimum`
/// and an exponentially growing cap, so a fleet that lost its coordinator does not
/// reconnect in lockstep when it comes back.
public struct Backoff: Sendable, Equatable {
    public var minimum: Duration
    public var maximum: Duration
    private var attempt = 0

    public init(minimum: Duration = .milliseconds(100), maximum: Duration = .seconds(5)) {
        self.minimum = minimum
        self.maximum = maximum
    }

    public mutating func reset() {
        attempt = 0
    }

    /// The next delay: uniformly random in [minimum, min(maximum, minimum · 2^attempt)],
    /// to the nanosecond.
    public mutating func next<R: RandomNumberGenerator>(using generator: inout R) -> Duration {
        let ceiling = min(maximum, minimum * (1 << min(attempt, 20)))
        attempt += 1
        let low = Self.nanoseconds(minimum)
        return .nanoseconds(Int64.random(in: low...max(low, Self.nanoseconds(ceiling)), using: &generator))
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
