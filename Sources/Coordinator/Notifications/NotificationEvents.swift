import Foundation

/// The notification events in one group commit's writes: pure, so what the core emits is
/// a unit test.
///
/// Why events are written in the commit itself, not sent over a channel to someone who
/// writes them later: the row lands in the same transaction as the state change it
/// reports, so a crash can lose neither one without the other, and a restart loses no
/// notification. The cost on the single writer is one pass over the batch's writes (a
/// type check each, done by `commit` anyway) and one small insert per event, and nothing
/// at all while no endpoint wants the event type (`NotificationInterest`). Everything
/// expensive (matching endpoints, building payloads, HTTP) happens later, off the
/// writer, in `NotificationService`.
enum NotificationEvents {
    /// `pipelineEnded(id)` answers whether the pipeline has no unfinished job left after
    /// the batch (the lifecycle drops a pipeline's progress with its last job).
    static func scan(
        _ writes: StoreBatch, wanted: Set<NotificationEventType>, now: Date, pipelineEnded: (String) -> Bool
    ) -> [StoredNotificationEvent] {
        guard !wanted.isEmpty else { return [] }
        var events: [StoredNotificationEvent] = []
        var finished: Set<String> = []
        func pipelineFinished(_ id: String) {
            guard wanted.contains(.pipelineFinished), !finished.contains(id), pipelineEnded(id) else { return }
            finished.insert(id)
            events.append(StoredNotificationEvent(type: .pipelineFinished, pipelineId: id, occurredAt: now))
        }
        for write in writes.writes {
            switch write {
            case .insertPipeline(let pipeline, let jobs):
                if wanted.contains(.pipelineStarted) {
                    events.append(StoredNotificationEvent(type: .pipelineStarted, pipelineId: pipeline.id, occurredAt: now))
                }
                // Every step skipped by its `if:`: the pipeline ends as it starts.
                if jobs.allSatisfy(\.isTerminal) { pipelineFinished(pipeline.id) }
            case .updateJob(let job) where job.isTerminal:
                if wanted.contains(.jobFinished) {
                    events.append(StoredNotificationEvent(type: .jobFinished, pipelineId: job.pipelineId, jobId: job.id, occurredAt: now))
                }
                if wanted.contains(.deploymentFinished), job.environment != nil, job.state != .skipped {
                    events.append(
                        StoredNotificationEvent(type: .deploymentFinished, pipelineId: job.pipelineId, jobId: job.id, occurredAt: now))
                }
                pipelineFinished(job.pipelineId)
            default:
                continue
            }
        }
        return events
    }
}
