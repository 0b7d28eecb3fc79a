/// Order statistics of one sample: what every latency row of docs/benchmarks.md reports.
///
/// Percentiles use the nearest-rank definition (the smallest value with at least p % of the
/// sample at or below it), so every reported figure is a value that was actually measured.
public struct Summary: Sendable {
    public let count: Int
    public let minimum: Double
    public let median: Double
    public let p95: Double
    public let p99: Double
    public let maximum: Double
    public let mean: Double

    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        count = sorted.count
        minimum = sorted[0]
        maximum = sorted[sorted.count - 1]
        median = Self.percentile(sorted, 50)
        p95 = Self.percentile(sorted, 95)
        p99 = Self.percentile(sorted, 99)
        mean = sorted.reduce(0, +) / Double(sorted.count)
    }

    /// Nearest rank on an already sorted, non-empty array.
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}

/// The spread of one figure over repeated runs: each run's value, and their min–max.
public struct Spread: Sendable {
    public let values: [Double]

    public init(_ values: [Double]) {
        self.values = values
    }

    public var minimum: Double { values.min() ?? .nan }
    public var maximum: Double { values.max() ?? .nan }
    public var median: Double { Summary(values)?.median ?? .nan }
}
