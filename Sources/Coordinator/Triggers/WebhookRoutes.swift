import Foundation
import GantryPipeline
import GantryProtocol
import GantryTransferRules
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// `POST /v1/hooks/{name}`: a git server's push starts the project's pipeline at the
/// pushed commit (the bootstrap: check out, `gantry pipeline upload` of the project's
/// pipeline file), as the project's creator.
///
/// No API token: the sender proves it holds the project's secret (`WebhookSignature`).
/// Everything is checked here, on the request's task, before the core hears of it: the
/// signature over the body as received (bounded), the event, the payload, the repository,
/// the branch or tag patterns; then the delivery is recorded, and a delivery recorded
/// before starts nothing (a replay, or the sender's retry after a lost answer). Each
/// refusal fails only this request and says why; every outcome is in the audit log as
/// `pipeline.trigger` by `webhook:NAME`.
extension APIRouter {
    /// Longest webhook body: a push of many commits is well under it (GitHub caps its
    /// payloads at 25 MB, but lists at most 20 commits per push).
    static let maximumWebhookBody = 4 * 1024 * 1024

    static func addWebhookRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let core = dependencies.core
        let audit = dependencies.audit
        let store = dependencies.projects ?? (core.store as? any ProjectStore)

        router.on(.receiveWebhook, audit: audit) { request, context -> Response in
            guard let store else { return projectsUnavailable() }
            let name = try context.parameter("name")
            guard ProjectSettings.isValidName(name), let project = try store.project(named: name) else {
                return APIResponses.error(.notFound, code: "unknown_project", message: "no project \(name.logSafe(maximum: 80))")
            }
            func record(_ outcome: String, _ detail: [String: String], object: String = "project:\(name)") {
                audit.record(
                    AuditEvent(
                        actor: "webhook:\(name)", tokenID: nil, address: context.remoteAddressText, action: "pipeline.trigger",
                        object: object, outcome: outcome, detail: detail))
            }
            func refuse(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
                record(status == .unauthorized ? "denied" : "refused", ["code": code, "reason": message.logSafe(maximum: 300)])
                return APIResponses.error(status, code: code, message: message)
            }
            let body: [UInt8]
            switch await BoundedBody.collect(request, upTo: maximumWebhookBody, what: "the webhook body") {
            case .success(let collected): body = Array(buffer: collected)
            case .failure(let refusal): return refusal.response
            }
            var headers: [String: String] = [:]
            for field in request.headers where headers[field.name.canonicalName] == nil {
                headers[field.name.canonicalName] = field.value
            }
            let secret: String
            do {
                secret = try core.secrets.webhookSecret(of: project)
            } catch {
                return refuse(
                    .internalServerError, "secret_unreadable",
                    "the project's webhook secret does not open with the coordinator's key; delete and create the project again")
            }
            let verified: WebhookSignature.Verified
            switch WebhookSignature.verify(headers: headers, body: body, secret: secret) {
            case .success(let ok): verified = ok
            case .failure(let refusal):
                return refuse(.unauthorized, refusal == .missing ? "signature_missing" : "bad_signature", refusal.description)
            }
            guard Self.isPush(verified) else {
                let event = verified.event.logSafe(maximum: 60)
                record("ignored", ["event": event, "delivery": verified.deliveryID])
                return APIResponses.json(API.WebhookResult(started: false, reason: "the \(event) event is not a push: nothing to build"))
            }
            let push: PushEvent
            switch Result(catching: { () throws(PushEvent.Malformed) -> PushEvent in try PushEvent.parse(body) }) {
            case .success(let parsed): push = parsed
            case .failure(let malformed): return refuse(.badRequest, "bad_payload", malformed.description)
            }
            guard let address = try? RepositoryAddress(parsing: project.repository), push.names(address) else {
                return refuse(
                    .unprocessableContent, "repository_mismatch",
                    "the push is for \(push.repositoryURLs.first?.logSafe(maximum: 200) ?? "another repository"), not the "
                        + "project's repository \(project.repository.logSafe(maximum: 200))")
            }
            let (branch, tag): (String?, String?)
            switch push.target {
            case .branch(let name): (branch, tag) = (name, nil)
            case .tag(let name): (branch, tag) = (nil, name)
            }
            let ref = branch.map { "branch \($0)" } ?? "tag \(tag ?? "")"
            guard !push.isDeletion else {
                record("ignored", ["ref": ref.logSafe(maximum: 200), "reason": "deleted"])
                return APIResponses.json(API.WebhookResult(started: false, reason: "the \(ref.logSafe(maximum: 200)) was deleted: nothing to build"))
            }
            guard ProjectSettings.accepts(push.target, branches: project.branchPatterns, tags: project.tagPatterns) else {
                record("ignored", ["ref": ref.logSafe(maximum: 200), "reason": "no pattern matches"])
                return APIResponses.json(
                    API.WebhookResult(
                        started: false, reason: "the project builds no \(ref.logSafe(maximum: 200)) (its patterns: branches "
                            + "\(project.branchPatterns.isEmpty ? "all" : project.branchPatterns.joined(separator: ", ")), tags "
                            + "\(project.tagPatterns.isEmpty ? "none" : project.tagPatterns.joined(separator: ", ")))"))
            }
            let delivery = StoredDelivery(
                project: name, deliveryId: verified.deliveryID, pipelineId: nil, ref: branch.map { "refs/heads/\($0)" } ?? "refs/tags/\(tag ?? "")",
                commit: push.commit, receivedAt: Date())
            if let earlier = try store.recordDelivery(delivery) {
                record("ignored", ["delivery": verified.deliveryID, "reason": "duplicate"], object: earlier.pipelineId.map { "pipeline:\($0)" } ?? "project:\(name)")
                return APIResponses.json(
                    API.WebhookResult(
                        started: false, duplicate: true, pipelineId: earlier.pipelineId,
                        reason: "delivery \(verified.deliveryID) was received before: nothing new to build"))
            }
            let submission = API.SubmitPipeline(
                yaml: PipelineBootstrap.yaml(uploading: project.pipelineFile), file: PipelineBootstrap.file,
                repository: project.repository, commit: push.commit, branch: branch, tag: tag, message: push.message)
            let pipeline: API.Pipeline
            do {
                pipeline = try await core.submit(submission, source: "webhook", submittedBy: project.createdBy)
            } catch {
                // Nothing started: the sender's retry of this delivery may start it.
                try? store.forgetDelivery(project: name, deliveryID: verified.deliveryID)
                if let refused = SubmissionRefusal.response(for: error, audit: context.audit) {
                    record("refused", ["delivery": verified.deliveryID, "reason": "\(error)".logSafe(maximum: 300)])
                    return refused
                }
                throw error
            }
            try store.setDeliveryPipeline(project: name, deliveryID: verified.deliveryID, pipelineID: pipeline.id)
            record(
                "succeeded",
                ["delivery": verified.deliveryID, "sender": verified.sender.rawValue, "ref": ref.logSafe(maximum: 200), "commit": push.commit],
                object: "pipeline:\(pipeline.id)")
            return APIResponses.json(API.WebhookResult(started: true, pipelineId: pipeline.id), status: .created)
        }
    }

    /// A push or tag push, in each sender's words.
    static func isPush(_ verified: WebhookSignature.Verified) -> Bool {
        switch verified.sender {
        case .github, .gitea: return verified.event == "push"
        case .gitlab: return verified.event == "Push Hook" || verified.event == "Tag Push Hook"
        }
    }
}
