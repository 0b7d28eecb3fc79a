import Foundation
import GantryProtocol
import Hummingbird

/// `POST /v1/jobs/{id}/retry` and `POST /v1/pipelines/{id}/rebuild`: running again by hand.
/// Both need `submit`, and the deploy rules of a submission for what they run again.
extension APIRouter {
    static func addRerunRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let core = dependencies.core
        let policy = dependencies.deployPolicy

        router.on(.retryJob, audit: dependencies.audit) { _, context -> Response in
            let id = try context.parameter("id")
            guard let principal = context.principal else {
                return APIResponses.error(.unauthorized, code: "unauthorized", message: "no principal")
            }
            context.audit.set(object: "job:\(id)")
            do {
                let result = try await core.retry(jobID: id, by: principal.identity) { job in
                    try principal.checkMayRetry(job, policy: policy)
                }
                switch result {
                case nil:
                    return APIResponses.error(.notFound, code: "not_found", message: "no job \(id)")
                case .failure(let refusal)?:
                    context.audit.add("reason", refusal.description)
                    return APIResponses.error(.conflict, code: "not_retryable", message: refusal.description)
                case .success(let job)?:
                    context.audit.add("attempt", String(["leased", "running"].contains(job.state) ? job.attempt : job.attempt + 1))
                    return APIResponses.json(job, status: .accepted)
                }
            } catch let refusal as DeployRefusal {
                context.audit.add("reason", "deploy not permitted")
                return APIResponses.error(.forbidden, code: "forbidden", message: refusal.description)
            }
        }

        router.on(.rebuildPipeline, audit: dependencies.audit) { _, context -> Response in
            let id = try context.parameter("id")
            guard let principal = context.principal else {
                return APIResponses.error(.unauthorized, code: "unauthorized", message: "no principal")
            }
            do {
                guard let pipeline = try await core.rebuild(
                    pipelineID: id, submittedBy: principal.identity, permit: { try principal.checkMayDeploy($0, policy: policy) })
                else {
                    return APIResponses.error(.notFound, code: "not_found", message: "no pipeline \(id)")
                }
                context.audit.set(object: "pipeline:\(pipeline.id)")
                context.audit.add("rebuild_of", id)
                return APIResponses.json(pipeline, status: .created)
            } catch {
                guard let refused = SubmissionRefusal.response(for: error, audit: context.audit) else { throw error }
                return refused
            }
        }
    }
}
