import Foundation
import GantryProtocol

/// What the queue asks of the fleet: the figures an autoscaler decides on and the
/// `/metrics` endpoint exports. Computed from the scheduler on demand (a pass over the
/// queue and the leases), never stored, so it cannot drift from what dispatch does.
public struct Demand: Sendable, Equatable {
    /// Runnable jobs not leased yet.
    public var queued: Int = 0
    /// Jobs leased or running.
    public var running: Int = 0
    /// How long the oldest queued job has waited, in seconds (0 with an empty queue).
    public var oldestQueuedWait: TimeInterval = 0

    public init(queued: Int = 0, running: Int = 0, oldestQueuedWait: TimeInterval = 0) {
        self.queued = queued
        self.running = running
        self.oldestQueuedWait = oldestQueuedWait
    }
}

extension Scheduler {
    /// Demand for the jobs an agent labelled `labels` could run: what a scaler that
    /// provides such agents must cover. `selector` and `queuedAt` come from the
    /// coordinator's job cache.
    public func demand(
        forAgentLabels labels: [String: String], selector: (String) -> [String: String]?, now: Date,
        queuedAt: (String) -> Date?
    ) -> Demand {
        var demand = Demand()
        for job in queue where Self.matches(selector: job.selector, labels: labels) {
            demand.queued += 1
            if let since = queuedAt(job.id) { demand.oldestQueuedWait = max(demand.oldestQueuedWait, now.timeIntervalSince(since)) }
        }
        for job in leases.keys {
            if let wanted = selector(job), Self.matches(selector: wanted, labels: labels) { demand.running += 1 }
        }
        return demand
    }

    /// Demand per distinct job selector (formatted with `LabelSet.format`).
    public func demandBySelector(
        selector: (String) -> [String: String]?, now: Date, queuedAt: (String) -> Date?
    ) -> [String: Demand] {
        var result: [String: Demand] = [:]
        for job in queue {
            let key = LabelSet.format(job.selector)
            result[key, default: Demand()].queued += 1
            if let since = queuedAt(job.id) {
                result[key]!.oldestQueuedWait = max(result[key]!.oldestQueuedWait, now.timeIntervalSince(since))
            }
        }
        for job in leases.keys {
            guard let wanted = selector(job) else { continue }
            result[LabelSet.format(wanted), default: Demand()].running += 1
        }
        return result
    }

    /// Agents per distinct label set and state.
    public func agentsByLabelSet() -> [String: [Agent.State: Int]] {
        var result: [String: [Agent.State: Int]] = [:]
        for agent in agents.values {
            result[LabelSet.format(agent.labels), default: [:]][agent.state, default: 0] += 1
        }
        return result
    }
}
