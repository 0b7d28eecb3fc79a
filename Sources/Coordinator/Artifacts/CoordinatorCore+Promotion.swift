import GantryPipeline
import GantryProtocol

extension CoordinatorCore {
    /// A pipeline that promotes another's artifacts (`--from-pipeline`, which wins, or
    /// `artifacts_from:`) must name one that exists: refused with 422 before anything is
    /// stored, on the request's task (one indexed read).
    nonisolated func checkPromotion(_ request: API.SubmitPipeline, _ definition: PipelineDefinition) throws {
        guard let source = request.fromPipeline ?? definition.artifactsFrom else { return }
        guard try store.pipelineExists(id: source) else {
            let origin = request.fromPipeline != nil ? "--from-pipeline" : "`artifacts_from`"
            throw PipelineError(
                file: request.file ?? "pipeline.yml", line: nil, column: nil,
                message: "\(origin) names pipeline \(source), which does not exist: promote the artifacts of a pipeline "
                    + "that ran on this coordinator (`gantry artifact list PIPELINE` shows them)")
        }
    }
}
