import Foundation
import GantryPipeline
import Synchronization
import GantryProtocol
import GantryTransferRules
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// `POST /v1/hooks/{name}`: a git server's push starts the project's pipeline at the
/// pushed commit (the bootstrap: check out, `gantry pipeline upload` of the project's
/// pipeline file), as the project's run-as identity (or `project:NAME`, without roles).
///
/// No API token: the sender proves it holds the project's secret (`WebhookSignature`).
/// Everything is checked here, on the request's task, before the core hears of it: a
/// signature header before the body is read; the signature over the body as received
/// (bounded, and at most `maximumWebhooksInFlight` bodies at once); the event, the
/// payload, the repository, the branch or tag patterns, the run-as identity as it is now.
/// Then the delivery is recorded by its id and by its body's sha256 (the id is not
/// signed), and a delivery recorded before starts nothing (a replay, a copy under another
/// id, or the sender's retry after a lost answer). Each refusal fails only this request
/// and says why; every outcome is in the audit log as `pipeline.trigger` by `webhook:NAME`.
extension APIRouter {
    /// Longest webhook body: a push lists at most 20 commits (GitHub), far below it.
    static let maximumWebhookBody = 2 * 1024 * 1024
    /// Webhook bodies read at once; more get 503 and the sender retries.
    static let maximumWebhooksInFlight = 16
    private static let webhooksInFlight = Mutex<Int>(0)
    /// This process, in the deliveries it records (`StoredDelivery.owner`).
    static let instance = UUID().uuidString

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
            var headers: [String: String] = [:]
            for field in request.headers where headers[field.name.canonicalName] == nil {
                headers[field.name.canonicalName] = field.value
            }
            // Nothing is read from a sender that does not even claim a signature.
            guard ["x-hub-signature-256", "x-gitea-signature", "x-gitlab-token"].contains(where: { headers[$0] != nil }) else {
                return refuse(.unauthorized, "signature_missing", WebhookSignature.Refusal.missing.description)
            }
            let admitted = webhooksInFlight.withLock { count -> Bool in
                guard count < maximumWebhooksInFlight else { return false }
                count += 1
                return true
            }
            guard admitted else {
                return APIResponses.error(.serviceUnavailable, code: "busy", message: "too many webhook deliveries at once: retry")
            }
            defer { webhooksInFlight.withLock { $0 -= 1 } }
            let body: [UInt8]
            switch await BoundedBody.collect(request, upTo: maximumWebhookBody, what: "the webhook body") {
            case .success(let collected): body = Array(buffer: collected)
            case .failure(let refusal): return refusal.response
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
                    "the push is for \(push.repositoryURLs.first.map(ProjectSettings.redacted)?.logSafe(maximum: 200) ?? "another repository"), "
                        + "not the project's repository \(ProjectSettings.redacted(project.repository).logSafe(maximum: 200))")
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
            // Who the pipeline is submitted as, as that identity is now: a run-as identity
            // disabled or stripped of `submit` since the project was made starts nothing.
            let runAs: Principal?
            switch try ProjectRunAs.resolve(project, identities: dependencies.identities) {
            case .success(let principal): runAs = principal
            case .failure(let why): return refuse(.forbidden, "run_as_refused", why.description)
            }
            let delivery = StoredDelivery(
                project: name, deliveryId: verified.deliveryID, pipelineId: nil,
                ref: branch.map { "refs/heads/\($0)" } ?? "refs/tags/\(tag ?? "")", commit: push.commit,
                bodySha256: WebhookSignature.sha256Hex(body), owner: instance, receivedAt: Date())
            let deliveryID: String
            switch try store.recordDelivery(delivery) {
            case .recorded(let id): deliveryID = id
            case .duplicate(let earlier):
                record(
                    "ignored", ["delivery": verified.deliveryID, "reason": "duplicate of \(earlier.deliveryId)"],
                    object: earlier.pipelineId.map { "pipeline:\($0)" } ?? "project:\(name)")
                return APIResponses.json(
                    API.WebhookResult(
                        started: false, duplicate: true, pipelineId: earlier.pipelineId,
                        reason: "this push was received before (delivery \(earlier.deliveryId)): nothing new to build"))
            }
            let submission = API.SubmitPipeline(
                yaml: PipelineBootstrap.yaml(uploading: project.pipelineFile), file: PipelineBootstrap.file,
                repository: project.repository, commit: push.commit, branch: branch, tag: tag, message: push.message)
            let pipeline: API.Pipeline
            do {
                let policy = dependencies.deployPolicy
                pipeline = try await core.submit(submission, source: "webhook", submittedBy: project.submitter) { definition in
                    try runAs?.checkMayDeploy(definition, policy: policy)
                }
            } catch {
                // Nothing started: the sender's retry of this delivery may start it.
                try? store.forgetDelivery(project: name, deliveryID: deliveryID)
                if let refused = SubmissionRefusal.response(for: error, audit: context.audit) {
                    record("refused", ["delivery": verified.deliveryID, "reason": "\(error)".logSafe(maximum: 300)])
                    return refused
                }
                throw error
            }
            try store.setDeliveryPipeline(project: name, deliveryID: deliveryID, pipelineID: pipeline.id)
            var cancelled: [String] = []
            if project.cancelSuperseded, let branch {
                cancelled = try await cancelSuperseded(
                    project: name, ref: delivery.ref, branch: branch, by: pipeline.id, store: store, core: core)
                for id in cancelled {
                    record("succeeded", ["reason": "superseded", "superseded_by": pipeline.id], object: "pipeline:\(id)")
                }
            }
            record(
                "succeeded",
                ["delivery": verified.deliveryID, "sender": verified.sender.rawValue, "ref": ref.logSafe(maximum: 200), "commit": push.commit],
                object: "pipeline:\(pipeline.id)")
            return APIResponses.json(
                API.WebhookResult(started: true, pipelineId: pipeline.id, cancelled: cancelled.isEmpty ? nil : cancelled),
                status: .created)
        }
    }

    /// The project's earlier builds of `branch` that are still running, cancelled in
    /// favour of `newer` (the 50 most recent deliveries of the branch are looked at).
    static func cancelSuperseded(
        project: String, ref: String, branch: String, by newer: String, store: any ProjectStore, core: CoordinatorCore
    ) async throws -> [String] {
        var cancelled: [String] = []
        for earlier in try store.deliveries(project: project, ref: ref, limit: 50) {
            guard let id = earlier.pipelineId, id != newer, try await core.pipeline(id: id)?.state == "running" else { continue }
            _ = try await core.cancel(pipelineID: id, reason: "superseded by pipeline \(newer), a newer push to \(branch.logSafe(maximum: 200))")
            cancelled.append(id)
        }
        return cancelled
    }

    /// A push or tag push, in each sender's words.
    static func isPush(_ verified: WebhookSignature.Verified) -> Bool {
        switch verified.sender {
        case .github, .gitea: return verified.event == "push"
        case .gitlab: return verified.event == "Push Hook" || verified.event == "Tag Push Hook"
        }
    }
}
