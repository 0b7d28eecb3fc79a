/// Waits between reconnections: 0.25 s doubling to 5 s, for at most `budget` in a row
/// without a successful connection, after which the coordinator counts as unreachable.
public struct Backoff: Sendable, Equatable {
    public static let first = 0.25
    public static let ceiling = 5.0
    public let budget: Double
    public private(set) var spent = 0.0
    private var next = Backoff.first

    public init(budget: Double = 300) {
        self.budget = budget
    }

    /// The next delay in seconds, or nil once the budget is spent.
    public mutating func delay() -> Double? {
        guard spent < budget else { return nil }
        let delay = min(next, budget - spent)
        spent += delay
        next = min(next * 2, Backoff.ceiling)
        return delay
    }

    /// A connection succeeded: the next failure starts from the first delay again.
    public mutating func reset() {
        spent = 0
        next = Backoff.first
    }
}
