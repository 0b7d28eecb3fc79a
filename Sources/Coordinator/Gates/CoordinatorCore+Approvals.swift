import Foundation
import GantryProtocol

/// Approval gates: `gantry approve|reject PIPELINE [--step KEY]`.
extension CoordinatorCore {
    /// What the approval route needs to decide who may decide: the block waiting in the
    /// pipeline (by `step`, or the only one).
    public func blockedJob(pipelineID: String, step: String?) -> Result<StoredJob, BlockDecisionRefusal> {
        lifecycle.blockedJob(pipeline: pipelineID, step: step)
    }

    /// Approves or rejects the blocked job `jobID`: its fields (resolved against the
    /// block by the caller) become meta-data in the same transaction as the decision.
    public func decide(
        jobID: String, approved: Bool, by actor: String, reason: String?, fields: [String: String]
    ) throws -> Result<API.Job, BlockDecisionRefusal> {
        guard let job = lifecycle.jobs[jobID] else { return .failure(.nothingBlocked(step: nil)) }
        let now = Date()
        let rows = fields.sorted { $0.key < $1.key }.map {
            StoredMetaData(pipelineId: job.pipelineId, key: $0.key, value: $0.value, jobId: jobID, updatedAt: now)
        }
        guard let (decided, output) = lifecycle.decide(jobID, approved: approved, by: actor, reason: reason, metaData: rows, now: now)
        else { return .failure(.nothingBlocked(step: job.key)) }
        try runNow(output)
        return .success(Self.view(decided))
    }
}
