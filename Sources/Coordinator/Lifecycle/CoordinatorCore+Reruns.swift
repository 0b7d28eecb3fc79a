import Foundation
import GantryProtocol

/// Running things again by hand: `gantry retry JOB` (a new attempt of a finished job)
/// and `gantry rebuild PIPELINE` (a new pipeline from the same file and source).
extension CoordinatorCore {
    /// Retries a finished job (see `RetryPlan`). The store reads and the plan run on the
    /// caller's task; `permit` may refuse any job the retry would run (the API checks
    /// who may deploy to each one's environment) before anything changes; only applying
    /// the plan runs on the single writer, which refuses a plan that went stale. Returns
    /// nil for an unknown job.
    public nonisolated func retry(
        jobID: String, by actor: String, permit: (StoredJob) throws -> Void = { _ in }
    ) async throws -> Result<API.Job, RetryRefusal>? {
        await flush()
        guard let job = try store.job(id: jobID), let pipeline = try store.pipeline(id: job.pipelineId) else { return nil }
        let pipelineJobs = try store.jobs(pipelineID: pipeline.id)
        let plan: RetryPlan
        switch RetryPlan.make(job: jobID, pipelineJobs: pipelineJobs) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let made): plan = made
        }
        try permit(plan.job)
        for reopened in plan.reopened { try permit(reopened) }
        return try await apply(plan, pipeline: pipeline, pipelineJobs: pipelineJobs, reason: "retried by \(actor)")
    }

    private func apply(
        _ plan: RetryPlan, pipeline: StoredPipeline, pipelineJobs: [StoredJob], reason: String
    ) throws -> Result<API.Job, RetryRefusal> {
        guard let (retried, output) = lifecycle.retry(plan, pipeline: pipeline, pipelineJobs: pipelineJobs, reason: reason, now: Date())
        else { return .failure(.changedMeanwhile) }
        try runNow(output)
        return .success(Self.view(retried))
    }

    /// Starts a new pipeline from a stored one: the same file, repository, commit,
    /// branch, tag, message and request env, pointing back at it. It is parsed and
    /// checked like a new submission (`permit`, secrets, limits), since the caller may
    /// not be the one who submitted it and the rules may have changed since. The new
    /// pipeline is `submittedBy` whoever rebuilt it.
    public nonisolated func rebuild(
        pipelineID: String, submittedBy: String? = nil, permit: (PipelineDefinition) throws -> Void = { _ in }
    ) async throws -> API.Pipeline? {
        await flush()
        guard let old = try store.pipeline(id: pipelineID) else { return nil }
        let request = API.SubmitPipeline(
            yaml: old.yaml, file: old.file, repository: old.repository, commit: old.commit, branch: old.branch,
            env: old.env, tag: old.tag.isEmpty ? nil : old.tag, message: old.message.isEmpty ? nil : old.message,
            fromPipeline: old.artifactsFrom)
        return try await submit(request, source: old.source, rebuildOf: old.id, submittedBy: submittedBy, permit: permit)
    }
}
