import Foundation
import GantryProtocol
import Prometheus
import Synchronization

/// The coordinator's Prometheus metrics (`GET /metrics`), for dashboards and for scaling
/// decisions made outside Gantry (a cloud autoscaler, KEDA).
///
/// Queue and fleet gauges are not kept up to date on every event: they are set from one
/// `ScalingSnapshot` at scrape time, so they are always consistent with each other and
/// cost nothing between scrapes. Label sets that disappeared since the last scrape are
/// unregistered, so a selector nobody uses any more stops being exported. The queue-wait
/// histogram is recorded as jobs are leased.
public final class CoordinatorMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let exported = Mutex<[String: Gauge]>([:])
    /// Step keys and agent label sets are the users': at most 200 values each, the rest
    /// `other` (`BoundedLabelValues`).
    let stepKeys = BoundedLabelValues(maximum: 200)
    let labelSets = BoundedLabelValues(maximum: 200)

    private static var queued: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "gantry", metricName: "jobs_queued", unitName: "",
            helpText: "Runnable jobs not yet leased, per job selector (\"\" = any agent).")
    }
    private static var running: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "gantry", metricName: "jobs_running", unitName: "",
            helpText: "Leased or running jobs, per job selector.")
    }
    private static var oldestWait: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "gantry", metricName: "queue_oldest_wait", unitName: "seconds",
            helpText: "How long the oldest queued job has waited, per job selector.")
    }
    private static var agents: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "gantry", metricName: "agents", unitName: "",
            helpText: "Agents per label set and state (idle, busy, draining, disconnected).")
    }
    private static var wait: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "gantry", metricName: "queue_wait", unitName: "seconds",
            helpText: "Time from a job being queued to its lease, per job selector.")
    }
    private static let waitBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50),
        .milliseconds(250), .seconds(1), .seconds(5), .seconds(30), .seconds(120), .seconds(600),
    ]

    public init() {}

    /// A job was leased after waiting `wait` in the queue. A histogram is never
    /// unregistered, so its selector is capped like the job series' label sets.
    func recordQueueWait(_ wait: TimeInterval, selector: [String: String]) {
        registry.makeDurationHistogram(
            descriptor: Self.wait, labels: [("selector", labelSets.label(LabelSet.format(selector)))], buckets: Self.waitBuckets
        ).recordNanoseconds(Int64(max(wait, 0) * 1e9))
    }

    /// The Prometheus text exposition of everything, with the gauges set from `snapshot`.
    public func render(_ snapshot: ScalingSnapshot) -> [UInt8] {
        exported.withLock { exported in
            var current: [String: Gauge] = [:]
            func set(_ descriptor: MetricNameDescriptor, _ labels: [(String, String)], _ value: Double) {
                let key = descriptor.name + "|" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: "|")
                let gauge = exported[key] ?? registry.makeGauge(descriptor: descriptor, labels: labels)
                gauge.set(value)
                current[key] = gauge
            }
            for (selector, demand) in snapshot.bySelector {
                set(Self.queued, [("selector", selector)], Double(demand.queued))
                set(Self.running, [("selector", selector)], Double(demand.running))
                set(Self.oldestWait, [("selector", selector)], demand.oldestQueuedWait)
            }
            for (labels, states) in snapshot.agentsByLabelSet {
                for state in Scheduler.Agent.State.allCases {
                    set(Self.agents, [("labels", labels), ("state", state.rawValue)], Double(states[state, default: 0]))
                }
            }
            for (key, gauge) in exported where current[key] == nil { registry.unregisterGauge(gauge) }
            exported = current
        }
        return registry.emitToBuffer()
    }
}
