import Foundation
import GantryProtocol
import Prometheus

/// The job, log, artifact, API and notification series of `/metrics`
/// (docs/operations.md, "Metrics"). Each is recorded where it happens, in O(1): the core
/// calls `observe(committed:)` once per group commit, after it is durable.
extension CoordinatorMetrics {
    static let jobBuckets: [Duration] = [
        .seconds(1), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300), .seconds(600),
        .seconds(1200), .seconds(1800), .seconds(3600), .seconds(7200),
    ]
    static let requestBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    private static func descriptor(_ name: String, unit: String = "", _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "gantry", metricName: name, unitName: unit, helpText: help)
    }

    static var jobDuration: MetricNameDescriptor {
        descriptor("job_duration", unit: "seconds", "Time from a job's start to its end, by outcome and agent label set.")
    }
    static var stepDuration: MetricNameDescriptor {
        descriptor("step_duration", unit: "seconds", "Time from a job's start to its end, by step key and outcome.")
    }
    static var startWait: MetricNameDescriptor {
        descriptor(
            "job_start_wait", unit: "seconds", "Time from a job being queued to its start on an agent, by label set.")
    }
    static var jobsFinished: MetricNameDescriptor {
        descriptor("jobs_finished", unit: "total", "Jobs that ended, by outcome (passed, failed, cancelled) and state.")
    }
    static var logBytes: MetricNameDescriptor {
        descriptor("log_bytes_received", unit: "total", "Bytes of job output received from agents (uncompressed).")
    }
    static var logStoredBytes: MetricNameDescriptor {
        descriptor("log_bytes_stored", unit: "total", "Bytes of job output stored (deflate-compressed, as received).")
    }
    static var artifactStored: MetricNameDescriptor {
        descriptor("artifact_bytes_stored", unit: "total", "Bytes of artifacts and cache archives stored, by kind.")
    }
    static var artifactServed: MetricNameDescriptor {
        descriptor("artifact_bytes_served", unit: "total", "Bytes of artifacts and cache archives served, by kind.")
    }
    static var requests: MetricNameDescriptor {
        descriptor(
            "api_request_duration", unit: "seconds", "HTTP API request latency to the response head, by route and status class.")
    }
    static var notificationAttempts: MetricNameDescriptor {
        descriptor(
            "notification_attempts", unit: "total",
            "Outgoing webhook attempts, by event and result (delivered, retry, failed).")
    }

    /// What a group commit stored: ended jobs and log chunks. One pass over the writes.
    func observe(committed batch: StoreBatch) {
        var raw = 0
        var compressed = 0
        for write in batch.writes {
            switch write {
            case .appendLog(let chunk):
                raw += chunk.rawLength
                compressed += chunk.data.count
            case .updateJob(let job) where job.isTerminal:
                recordJobEnded(job)
            default:
                continue
            }
        }
        if raw > 0 {
            registry.makeCounter(descriptor: Self.logBytes, labels: []).increment(by: Int64(raw))
            registry.makeCounter(descriptor: Self.logStoredBytes, labels: []).increment(by: Int64(compressed))
        }
    }

    /// A job ended: its outcome counted, and if it ran, its duration by outcome and label
    /// set and by step key, and its wait from queued to started.
    func recordJobEnded(_ job: StoredJob) {
        let outcome = (job.outcome ?? JobOutcome(state: job.state)).rawValue
        registry.makeCounter(descriptor: Self.jobsFinished, labels: [("outcome", outcome), ("state", job.state.rawValue)])
            .increment()
        guard let started = job.startedAt else { return }
        let labels = labelSets.label(LabelSet.format(job.agents))
        if let finished = job.finishedAt {
            let nanoseconds = Int64(max(finished.timeIntervalSince(started), 0) * 1e9)
            registry.makeDurationHistogram(
                descriptor: Self.jobDuration, labels: [("outcome", outcome), ("labels", labels)], buckets: Self.jobBuckets
            ).recordNanoseconds(nanoseconds)
            registry.makeDurationHistogram(
                descriptor: Self.stepDuration, labels: [("step", stepKeys.label(job.key)), ("outcome", outcome)],
                buckets: Self.jobBuckets
            ).recordNanoseconds(nanoseconds)
        }
        if let queued = job.queuedAt {
            registry.makeDurationHistogram(
                descriptor: Self.startWait, labels: [("labels", labels)], buckets: Self.jobBuckets
            ).recordNanoseconds(Int64(max(started.timeIntervalSince(queued), 0) * 1e9))
        }
    }

    func recordArtifactBytes(stored bytes: Int, kind: String) {
        registry.makeCounter(descriptor: Self.artifactStored, labels: [("kind", kind)]).increment(by: Int64(bytes))
    }

    func recordArtifactBytes(served bytes: Int, kind: String) {
        registry.makeCounter(descriptor: Self.artifactServed, labels: [("kind", kind)]).increment(by: Int64(bytes))
    }

    /// `route` is an `APIRoute` case name or `unmatched`: a few dozen values.
    func recordRequest(route: String, status: Int, duration: Duration) {
        let statusClass = (100...599).contains(status) ? "\(status / 100)xx" : "other"
        registry.makeDurationHistogram(
            descriptor: Self.requests, labels: [("route", route), ("status", statusClass)], buckets: Self.requestBuckets
        ).record(duration)
    }

    func recordNotificationAttempt(event: String, result: NotificationAttempt.Next) {
        let name: String
        switch result {
        case .delivered: name = "delivered"
        case .retry: name = "retry"
        case .failed: name = "failed"
        }
        registry.makeCounter(descriptor: Self.notificationAttempts, labels: [("event", event), ("result", name)]).increment()
    }
}
