/// Jittered exponential backoff for reconnects: each delay is uniform between `minimum`
/// and an exponentially growing cap, so a fleet that lost its coordinator does not
/// reconnect in lockstep when it comes back.
public struct Backoff: Sendable {
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

    /// The next delay: uniformly random in [minimum, min(maximum, minimum · 2^attempt)].
    public mutating func next<R: RandomNumberGenerator>(using generator: inout R) -> Duration {
        let ceiling = min(maximum, minimum * (1 << min(attempt, 20)))
        attempt += 1
        let low = Double(minimum.components.seconds) + Double(minimum.components.attoseconds) / 1e18
        let high = Double(ceiling.components.seconds) + Double(ceiling.components.attoseconds) / 1e18
        return .seconds(Double.random(in: low...max(low, high), using: &generator))
    }

    public mutating func next() -> Duration {
        var generator = SystemRandomNumberGenerator()
        return next(using: &generator)
    }
}
