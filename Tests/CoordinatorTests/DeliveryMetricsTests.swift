import Foundation
@testable import GantryCoordinator
import Testing

/// The delivery metrics of a scripted history, each figure worked out by hand below.
@Suite("Delivery metrics")
struct DeliveryMetricsTests {
    @Test func aScriptedHistoryGivesTheFiguresWorkedOutByHand() {
        let since = Date(timeIntervalSince1970: 1_800_000_000)
        func at(_ day: Double, _ hour: Double, _ minute: Double = 0) -> Date {
            since.addingTimeInterval(day * 86_400 + hour * 3_600 + minute * 60)
        }
        typealias Event = DeliveryMetrics.Event
        let events = [
            // Before the window: not counted.
            Event(environment: "production", changeAt: at(-2, 9), finishedAt: at(-1, 10), succeeded: false),
            // D1 success, lead 1 h.
            Event(environment: "production", changeAt: at(0, 10), finishedAt: at(0, 11), succeeded: true),
            // D2, D3 fail: one streak, from D2's end (day 1 09:30).
            Event(environment: "production", changeAt: at(1, 9), finishedAt: at(1, 9, 30), succeeded: false),
            Event(environment: "production", changeAt: at(1, 10), finishedAt: at(1, 12), succeeded: false),
            // D4 success, lead 1 h; restores the streak: 09:30 → 13:30 = 4 h.
            Event(environment: "production", changeAt: at(1, 12, 30), finishedAt: at(1, 13, 30), succeeded: true),
            // D5 success, lead 20 min.
            Event(environment: "production", changeAt: at(3, 8), finishedAt: at(3, 8, 20), succeeded: true),
            // Cancelled: counted nowhere.
            Event(environment: "production", changeAt: at(5, 0), finishedAt: at(5, 2), succeeded: false, cancelled: true),
            // D7 fails at the end of the window: not restored.
            Event(environment: "production", changeAt: at(9, 10), finishedAt: at(9, 10, 5), succeeded: false),
            Event(environment: "staging", changeAt: at(2, 0), finishedAt: at(2, 0, 10), succeeded: true),
        ]
        let metrics = DeliveryMetrics.compute(events, since: since, until: at(10, 0))
        #expect(metrics.map(\.name) == ["production", "staging"])
        let production = metrics[0]
        // D1, D2, D3, D4, D5, D7: 6 finished, 3 succeeded, 3 failed.
        #expect(production.deployments == 6 && production.successes == 3 && production.failures == 3)
        // 3 successes over 10 days.
        #expect(production.deploymentsPerDay == 0.3)
        // Lead times 3600, 3600, 1200 s: nearest-rank median (rank 2 of 3) and p90 (rank 3) are 3600.
        #expect(production.leadTimeMedian == 3_600 && production.leadTimeP90 == 3_600)
        #expect(production.changeFailureRate == 0.5)
        #expect(production.timeToRestoreMedian == 14_400 && production.unrestoredFailures == 1)
        let staging = metrics[1]
        #expect(staging.deployments == 1 && staging.changeFailureRate == 0 && staging.leadTimeMedian == 600)
        #expect(staging.timeToRestoreMedian == nil && staging.unrestoredFailures == 0 && staging.deploymentsPerDay == 0.1)
        #expect(DeliveryMetrics.compute([], since: since, until: at(1, 0)).isEmpty)
    }

    /// A change that a rollback replaced is a failed change, restored when the rollback
    /// succeeded; the rollback is a deployment but not a change.
    @Test func aRolledBackChangeIsAFailureRestoredByItsRollback() {
        let since = Date(timeIntervalSince1970: 1_800_000_000)
        func at(_ hour: Double) -> Date { since.addingTimeInterval(hour * 3_600) }
        typealias Event = DeliveryMetrics.Event
        let metrics = DeliveryMetrics.compute(
            [
                // v1 deployed at 1:00 (lead 1 h), v2 at 3:00 (lead 1 h), rolled back to v1 at 5:00.
                Event(environment: "production", changeAt: at(0), finishedAt: at(1), succeeded: true),
                Event(environment: "production", changeAt: at(2), finishedAt: at(3), succeeded: true),
                Event(environment: "production", changeAt: at(4.5), finishedAt: at(5), succeeded: true, rollback: true),
            ], since: since, until: at(24))
        let production = metrics[0]
        // 3 deployments, all succeeded; 1 failed change (v2) of 3: a third.
        #expect(production.deployments == 3 && production.successes == 3 && production.failures == 1)
        #expect(production.changeFailureRate == 1.0 / 3)
        // Restored 2 h after v2 (3:00 → 5:00); lead times only of v1 and v2: 1 h each.
        #expect(production.timeToRestoreMedian == 7_200 && production.unrestoredFailures == 0)
        #expect(production.leadTimeMedian == 3_600 && production.leadTimeP90 == 3_600)
        #expect(production.deploymentsPerDay == 3)
    }
}
