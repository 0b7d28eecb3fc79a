import Foundation
import GantryPipeline
import GantryProtocol
import Hummingbird
import NIOCore

extension APIRouter {
    /// `POST /v1/pipelines/{id}/steps[?file=NAME]`: a running step adds steps to its own
    /// pipeline (`gantry pipeline upload`). The body is the pipeline YAML itself, bounded
    /// like a submission (1 MiB); `file` (at most 256 bytes, default `pipeline.yml`) is
    /// the name errors point into. 201 with `API.UploadedSteps`; 422 with file, line and
    /// column for an invalid file; 403 for a person's token, or deploying steps the
    /// pipeline's submitter may not deploy; 409 once the step's attempt has ended.
    /// Nothing is added on any error. Audited as `pipeline.upload` with the counts.
    static func addPipelineUploadRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let core = dependencies.core
        let identities = dependencies.identities
        let policy = dependencies.deployPolicy

        router.on(.uploadPipelineSteps, audit: dependencies.audit) { request, context -> Response in
            let pipelineID = try context.parameter("id")
            // The router confines a job token to its own pipeline; a person's token passes
            // the route's `submit` permission and is refused here: uploaded steps are the
            // running build's, and a person adds steps by submitting a pipeline.
            guard let grant = context.principal?.job, grant.pipelineID == pipelineID else {
                context.audit.add("reason", "not a job token")
                return APIResponses.error(
                    .forbidden, code: "forbidden",
                    message: "only a running step may add steps to its pipeline, with its job token (GANTRY_JOB_TOKEN, "
                        + "which `gantry pipeline upload` uses inside a step); with an API token, submit a pipeline "
                        + "instead (`gantry run`)")
            }
            let file = request.uri.queryParameters.get("file").map { String($0) } ?? "pipeline.yml"
            let body: ByteBuffer
            switch await BoundedBody.collect(request, upTo: maximumPipelineSize, what: "the uploaded file") {
            case .success(let collected): body = collected
            case .failure(let refusal): return refusal.response
            }
            guard let yaml = String(validating: body.readableBytesView, as: UTF8.self) else {
                return APIResponses.error(.badRequest, code: "bad_request", message: "the uploaded file is not UTF-8 text")
            }
            var steps = 0
            do {
                let uploaded = try await core.uploadSteps(yaml, file: file, grant: grant) { definition, pipeline in
                    steps = definition.steps.count
                    try Self.checkSubmitterMayDeploy(definition, of: pipeline, identities: identities, policy: policy)
                }
                guard let uploaded else {
                    return APIResponses.error(.notFound, code: "not_found", message: "no pipeline \(pipelineID.logSafe(maximum: 128))")
                }
                context.audit.add("steps", String(steps))
                context.audit.add("jobs", String(uploaded.jobs.count))
                context.audit.add("job", grant.jobID)
                return APIResponses.json(uploaded, status: .created)
            } catch let refusal as UploadRefusal {
                context.audit.add("reason", refusal.description)
                switch refusal.kind {
                case .pipelineEnded, .notHeld:
                    return APIResponses.error(.conflict, code: "not_running", message: refusal.description)
                case .invalid, .limit:
                    return APIResponses.error(
                        .unprocessableContent, code: "invalid_pipeline", message: refusal.description, file: file)
                }
            } catch {
                guard let refused = SubmissionRefusal.response(for: error, audit: context.audit) else { throw error }
                return refused
            }
        }
    }

    /// Uploaded steps act for the identity that submitted the pipeline (recorded with it,
    /// `StoredPipeline.submittedBy`), with the roles it holds now: a step with
    /// `environment: NAME`, or on a trusted label, needs what it would need in a
    /// submission by that identity. A job token is no person, and a developer's build
    /// must not deploy by uploading a file. A pipeline that records no submitter (older
    /// than schema v12, or started by no person), or whose submitter is disabled or gone,
    /// may upload only steps that need no deploy permission.
    static func checkSubmitterMayDeploy(
        _ definition: PipelineDefinition, of pipeline: StoredPipeline, identities: any IdentityStore, policy: DeployPolicy
    ) throws {
        let (submitter, who) = try PipelineSubmitter.principal(of: pipeline, identities: identities)
        do throws(DeployRefusal) {
            try submitter.checkMayDeploy(definition, policy: policy)
        } catch {
            guard error.kind == .forbidden else { throw error }
            throw DeployRefusal(
                kind: .forbidden,
                description: "uploaded steps act for \(who), and need what a submission by it would: \(error.description)")
        }
    }
}
