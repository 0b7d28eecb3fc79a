import Foundation

/// The four delivery (DORA) metrics of one environment over a window, computed from its
/// deployments (pure: the caller reads them, `GET /v1/metrics/dora`).
///
/// - **Deployment frequency**: successful deployments per day of the window.
/// - **Lead time for changes**: from the change entering Gantry (its pipeline's creation:
///   the push, for a webhook) to its successful deployment; median and 90th percentile.
///   Gantry does not read commit times, so time spent before the push is not counted.
/// - **Change failure rate**: failed changes over all finished deployments: a failed (or
///   timed-out) deployment, or a successful one that a rollback (`gantry rollback`) then
///   replaced.
/// - **Time to restore**: from a failed deployment to the next successful one of the same
///   environment, or from a deployment that was rolled back to its rollback's success;
///   median. A failure not followed by a success in the window is counted as unrestored.
///
/// A rollback is a deployment (it counts for the frequency) but not a change: it has no
/// lead time.
public struct DeliveryMetrics: Sendable, Equatable {
    public struct Event: Sendable, Equatable {
        public var environment: String
        public var changeAt: Date
        public var finishedAt: Date
        public var succeeded: Bool
        /// Cancelled deployments count for nothing: nobody's change failed.
        public var cancelled: Bool
        /// A deployment of a rollback pipeline.
        public var rollback: Bool

        public init(
            environment: String, changeAt: Date, finishedAt: Date, succeeded: Bool, cancelled: Bool = false, rollback: Bool = false
        ) {
            self.rollback = rollback
            self.environment = environment
            self.changeAt = changeAt
            self.finishedAt = finishedAt
            self.succeeded = succeeded
            self.cancelled = cancelled
        }
    }

    public struct Environment: Sendable, Equatable {
        public var name: String
        public var deployments: Int
        public var successes: Int
        public var failures: Int
        public var deploymentsPerDay: Double
        public var leadTimeMedian: Double?
        public var leadTimeP90: Double?
        public var changeFailureRate: Double?
        public var timeToRestoreMedian: Double?
        public var unrestoredFailures: Int
    }

    /// The metrics of every environment with a deployment that finished in `[since, until)`.
    public static func compute(_ events: [Event], since: Date, until: Date) -> [Environment] {
        let days = max(until.timeIntervalSince(since) / 86_400, 1.0 / 24)
        let inWindow = events.filter { $0.finishedAt >= since && $0.finishedAt < until && !$0.cancelled }
        return Dictionary(grouping: inWindow, by: \.environment).keys.sorted().map { name in
            let ordered = inWindow.filter { $0.environment == name }.sorted { $0.finishedAt < $1.finishedAt }
            let successes = ordered.filter(\.succeeded)
            let leadTimes = successes.filter { !$0.rollback }.map { max(0, $0.finishedAt.timeIntervalSince($0.changeAt)) }
            var failures = 0
            var restores: [Double] = []
            var unrestored = 0
            var failedSince: Date?
            var lastChange: Event?
            for event in ordered {
                if event.succeeded {
                    if event.rollback, failedSince == nil, let replaced = lastChange {
                        // The change it replaced failed; restored when the rollback succeeded.
                        failures += 1
                        restores.append(event.finishedAt.timeIntervalSince(replaced.finishedAt))
                    } else if let start = failedSince {
                        restores.append(event.finishedAt.timeIntervalSince(start))
                    }
                    failedSince = nil
                    lastChange = event.rollback ? nil : event
                } else {
                    failures += 1
                    if failedSince == nil { failedSince = event.finishedAt }
                }
            }
            if failedSince != nil { unrestored += 1 }
            return Environment(
                name: name, deployments: ordered.count, successes: successes.count, failures: failures,
                deploymentsPerDay: Double(successes.count) / days, leadTimeMedian: percentile(leadTimes, 0.5),
                leadTimeP90: percentile(leadTimes, 0.9),
                changeFailureRate: ordered.isEmpty ? nil : Double(failures) / Double(ordered.count),
                timeToRestoreMedian: percentile(restores, 0.5), unrestoredFailures: unrestored)
        }
    }

    /// Nearest-rank percentile (`p` in 0...1); nil for no values.
    static func percentile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}
