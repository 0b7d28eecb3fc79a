import Crypto
import Foundation
import GantryPipeline
import GantryProtocol

/// `gantry pipeline upload`: a running step adds steps to its own pipeline.
extension CoordinatorCore {
    /// Parses, checks and appends steps uploaded by the attempt `grant` stands for.
    /// Returns nil for an unknown pipeline.
    ///
    /// Everything but the append runs on the caller's task, as a submission does: the
    /// store reads, the parse (with the pipeline's steps as context, so keys, dependencies
    /// and the job limit are checked with the file's line and column), `permit` (the
    /// route checks the submitter's deploy permission), the environments' rules, the
    /// secrets' scopes and the rows with their `if:` conditions. The lifecycle then
    /// checks again what may have changed meanwhile (the attempt, the keys, the limits)
    /// and appends the rows in one transaction, or refuses with nothing added.
    public nonisolated func uploadSteps(
        _ yaml: String, file: String, grant: Principal.JobGrant,
        permit: (PipelineDefinition, StoredPipeline) throws -> Void = { _, _ in }
    ) async throws -> API.UploadedSteps? {
        try SubmissionCheck.check(API.SubmitPipeline(yaml: "", file: file))
        await flush()
        guard let pipeline = try store.pipeline(id: grant.pipelineID) else { return nil }
        let existing = try store.jobs(pipelineID: pipeline.id)
        guard existing.contains(where: { !$0.isTerminal }) else {
            throw UploadRefusal(kind: .pipelineEnded, description: "pipeline \(pipeline.id) has ended: no steps can be added to it")
        }
        guard let uploader = existing.first(where: { $0.id == grant.jobID }), uploader.state.isHeld,
            uploader.attempt == Int(grant.attempt)
        else {
            throw UploadRefusal(
                kind: .notHeld,
                description: "attempt \(grant.attempt) of job \(grant.jobID) is no longer running: only a running step may add "
                    + "steps to its pipeline")
        }
        let origin = UploadOrigin(job: uploader.id, attempt: uploader.attempt, digest: Self.uploadDigest(yaml, file: file))
        if let earlier = Self.replayed(origin, in: existing) {
            // Nothing is written: the jobs exist, and the attempt was checked to be held.
            logger.info(
                "upload already made by an earlier attempt; nothing added",
                metadata: [
                    "pipeline": "\(pipeline.id)", "job": "\(uploader.id)", "attempt": "\(uploader.attempt)",
                    "earlier_attempt": "\(earlier.attempt)",
                ])
            return API.UploadedSteps(pipelineId: pipeline.id, jobs: earlier.jobs, alreadyUploadedBy: earlier.attempt)
        }
        guard pipeline.uploads < JobLifecycle.maximumUploadsPerPipeline else {
            throw UploadRefusal(
                kind: .limit,
                description: "pipeline \(pipeline.id) already had \(pipeline.uploads) uploads, the most one pipeline may have")
        }
        let context = PipelineUploadContext(
            existingKeys: Set(existing.map(\.key)), existingJobs: existing.count, later: Self.steps(after: uploader.key, in: existing),
            // The count is read here, off the single writer: two jobs uploading at once read
            // the same one, so the uploader's id keeps their keyless steps apart.
            defaultKeyPrefix: "upload-\(pipeline.uploads + 1)-\(uploader.id.prefix(8)).")
        let definition = try PipelineParser(file: file, upload: context, promotes: pipeline.artifactsFrom != nil).parse(yaml)
        try permit(definition, pipeline)
        try configuration.environments.check(uploaded: definition, branch: pipeline.branch, after: uploader.key, existing: existing)
        try checkUploadedPromotion(definition, into: pipeline, existing: existing, after: uploader.key, file: file)
        try SecretRequirements.check(
            definition, request: API.SubmitPipeline(yaml: "", file: file, repository: pipeline.repository, env: pipeline.env),
            vault: secrets)
        var rows = try Self.jobRows(
            for: definition, pipeline: pipeline, file: file, environments: configuration.environments,
            firstPosition: existing.count, now: Date())
        for index in rows.indices { rows[index].upload = origin }
        try await append(PipelineUpload(pipelineID: pipeline.id, jobID: uploader.id, attempt: uploader.attempt, jobs: rows))
        return API.UploadedSteps(pipelineId: pipeline.id, jobs: rows.map(\.id))
    }

    /// The single writer's part: the lifecycle's checks and the append, committed before
    /// the caller is answered.
    func append(_ upload: PipelineUpload) throws {
        switch lifecycle.upload(upload, now: Date()) {
        case .failure(let refusal): throw refusal
        case .success(let output): try runNow(output)
        }
    }

    /// What identifies one upload's content: the file's name and its text.
    static func uploadDigest(_ yaml: String, file: String) -> String {
        var hash = SHA256()
        hash.update(data: Data(file.utf8))
        hash.update(data: Data([0]))
        hash.update(data: Data(yaml.utf8))
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The jobs an earlier attempt of the same job added with the same content, from the
    /// latest such attempt, or nil when this upload is new. The uploading attempt itself
    /// may upload the same file twice on purpose (keyless steps then run twice); only a
    /// later attempt repeating it is a replay.
    static func replayed(_ origin: UploadOrigin, in jobs: [StoredJob]) -> (attempt: Int, jobs: [String])? {
        var latest: Int?
        for job in jobs {
            guard let upload = job.upload, upload.job == origin.job, upload.digest == origin.digest,
                upload.attempt < origin.attempt
            else { continue }
            latest = max(latest ?? upload.attempt, upload.attempt)
        }
        guard let latest else { return nil }
        let ids = jobs.filter { $0.upload?.job == origin.job && $0.upload?.digest == origin.digest && $0.upload?.attempt == latest }
            .sorted { $0.position < $1.position }.map(\.id)
        return (latest, ids)
    }

    /// The steps of `jobs` still waiting, directly or through others, for step `key`.
    static func steps(after key: String, in jobs: [StoredJob]) -> Set<String> {
        var dependents: [String: Set<String>] = [:]
        for job in jobs where job.state == .waiting {
            for dependency in job.dependsOn { dependents[dependency, default: []].insert(job.key) }
        }
        var later: Set<String> = []
        var frontier = [key]
        while let step = frontier.popLast() {
            for dependent in dependents[step] ?? [] where later.insert(dependent).inserted { frontier.append(dependent) }
        }
        return later
    }
}
