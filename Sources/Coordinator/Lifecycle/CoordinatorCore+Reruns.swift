import Foundation
import GantryProtocol

/// Running things again by hand: `gantry retry JOB` (a new attempt of a finished job)
/// and `gantry rebuild PIPELINE` (a new pipeline from the same file and source).
extension CoordinatorCore {
    /// Retries a finished job (see `JobLifecycle.retry(job:...)`). `permit` may refuse it
    /// by the job (the API checks who may deploy to its environment) before anything
    /// changes. Returns nil for an unknown job.
    public func retry(
        jobID: String, by actor: String, permit: (StoredJob) throws -> Void = { _ in }
    ) throws -> Result<API.Job, RetryRefusal>? {
        flush()
        guard let job = try store.job(id: jobID) else { return nil }
        try permit(job)
        guard let pipeline = try store.pipeline(id: job.pipelineId) else { return nil }
        let pipelineJobs = try store.jobs(pipelineID: pipeline.id)
        switch lifecycle.retry(
            job: jobID, pipeline: pipeline, pipelineJobs: pipelineJobs, reason: "retried by \(actor)", now: Date())
        {
        case .failure(let refusal):
            return .failure(refusal)
        case .success(let (retried, output)):
            try runNow(output)
            return .success(Self.view(retried))
        }
    }

    /// Starts a new pipeline from a stored one: the same file, repository, commit,
    /// branch, tag, message and request env, pointing back at it. It is parsed and
    /// checked like a new submission (`permit`, secrets, limits), since the caller may
    /// not be the one who submitted it and the rules may have changed since.
    public nonisolated func rebuild(
        pipelineID: String, permit: (PipelineDefinition) throws -> Void = { _ in }
    ) async throws -> API.Pipeline? {
        await flush()
        guard let old = try store.pipeline(id: pipelineID) else { return nil }
        let request = API.SubmitPipeline(
            yaml: old.yaml, file: old.file, repository: old.repository, commit: old.commit, branch: old.branch,
            env: old.env, tag: old.tag.isEmpty ? nil : old.tag, message: old.message.isEmpty ? nil : old.message)
        return try await submit(request, source: old.source, rebuildOf: old.id, permit: permit)
    }
}
