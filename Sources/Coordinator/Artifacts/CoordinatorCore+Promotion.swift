import GantryPipeline
import GantryProtocol

extension CoordinatorCore {
    /// A pipeline that promotes another's artifacts (`--from-pipeline`, which wins, or
    /// `artifacts_from:`) is refused with 422 before anything is stored unless the source
    /// exists and `PromotionCheck` passes: it succeeded, it built the same repository,
    /// its branch meets the environments' `branches` rules, and it has every step the
    /// file's `download:` rules name outside the file. On the request's task (two
    /// indexed reads).
    nonisolated func checkPromotion(_ request: API.SubmitPipeline, _ definition: PipelineDefinition) throws {
        guard let sourceID = request.fromPipeline ?? definition.artifactsFrom else { return }
        let origin = request.fromPipeline != nil ? "--from-pipeline" : "`artifacts_from`"
        let file = request.file ?? "pipeline.yml"
        guard let source = try store.pipeline(id: sourceID) else {
            throw PipelineError(
                file: file, line: nil, column: nil,
                message: "\(origin) names pipeline \(sourceID), which does not exist: promote the artifacts of a pipeline "
                    + "that ran on this coordinator (`gantry artifact list PIPELINE` shows them)")
        }
        let check = PromotionCheck(
            origin: origin, source: source, sourceJobs: try store.jobs(pipelineID: sourceID), environments: configuration.environments)
        try check.check(definition, repository: request.repository ?? "", file: file)
    }

    /// Steps uploaded into a pipeline that promotes another may download from that
    /// one's steps: each must exist there, and a deploy among them meets the `branches`
    /// rules with the source's branch too (its state and repository were checked when
    /// the pipeline was submitted).
    nonisolated func checkUploadedPromotion(
        _ definition: PipelineDefinition, into pipeline: StoredPipeline, existing: [StoredJob], after uploader: String, file: String
    ) throws {
        guard let sourceID = pipeline.artifactsFrom else { return }
        guard let source = try store.pipeline(id: sourceID) else { return }
        let check = PromotionCheck(
            origin: "the pipeline's promotion", source: source, sourceJobs: try store.jobs(pipelineID: sourceID),
            environments: configuration.environments)
        try check.checkSteps(definition.foreignDownloadSteps(existing: Set(existing.map(\.key))), file: file)
        do throws(DeployRefusal) {
            try configuration.environments.check(uploaded: definition, branch: source.branch, after: uploader, existing: existing)
        } catch {
            throw check.branchRefusal(error)
        }
    }
}

/// What promoting a pipeline's artifacts demands of that pipeline, pure over its rows.
///
/// Promotion means "these exact bytes, already built and tested, go on": so the source
/// must have succeeded (a failed or running build promotes nothing), have built the
/// same repository when both pipelines name one, and come from a branch the target
/// environments accept. The last matters because the promoting submission's own
/// `--branch` is whatever its submitter says: without it, a feature branch's build
/// would reach production through a deploy submitted with `--branch main`.
struct PromotionCheck {
    var origin: String
    var source: StoredPipeline
    var sourceJobs: [StoredJob]
    var environments: EnvironmentRules

    func check(_ definition: PipelineDefinition, repository: String, file: String) throws {
        let state = CoordinatorCore.view(source, jobs: sourceJobs).state
        guard state == "succeeded" else {
            throw PipelineError(
                file: file, line: nil, column: nil,
                message: "\(origin) names pipeline \(source.id), which is \(state): only a pipeline that succeeded may be "
                    + "promoted (promotion rule `succeeded`)")
        }
        if !repository.isEmpty, !source.repository.isEmpty, repository != source.repository {
            throw PipelineError(
                file: file, line: nil, column: nil,
                message: "\(origin) names pipeline \(source.id), which built \(source.repository.logSafe(maximum: 256)), not "
                    + "\(repository.logSafe(maximum: 256)) (promotion rule `repository`)")
        }
        do throws(DeployRefusal) {
            try environments.check(definition, branch: source.branch)
        } catch {
            throw branchRefusal(error)
        }
        try checkSteps(definition.foreignDownloadSteps(), file: file)
    }

    /// Each `download.step` outside the file must be a step of the source.
    func checkSteps(_ steps: [String], file: String) throws {
        let keys = Set(sourceJobs.map(\.key))
        if let missing = steps.first(where: { !keys.contains($0) }) {
            throw PipelineError(
                file: file, line: nil, column: nil,
                message: "a `download:` names step `\(missing.logSafe(maximum: 128))`, which is neither a step of this pipeline "
                    + "nor of pipeline \(source.id) that it promotes (\(origin))")
        }
    }

    func branchRefusal(_ refusal: DeployRefusal) -> DeployRefusal {
        DeployRefusal(
            kind: refusal.kind,
            description: "\(origin) names pipeline \(source.id), built from branch `\(source.branch.logSafe(maximum: 128))`: "
                + "the promoted bytes must come from a branch the environment accepts too (\(refusal.description))")
    }
}
