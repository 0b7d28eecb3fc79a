#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Every route the coordinator's HTTP API serves, with the one permission it needs: the
/// single place where "who may call this" is declared. The coordinator registers its
/// handlers by these cases (so a handler cannot exist without a declared permission),
/// the CLI builds its paths from them, and a test calls every case with every role.
public enum APIRoute: String, CaseIterable, Sendable {
    case health
    case metrics
    case whoami
    /// The OpenAPI 3.1 document of this API (docs/openapi.json, embedded in the binary).
    case openAPIDocument

    case submitPipeline
    /// Pipelines newest first, filtered and paginated by cursor (`API.PipelineList`).
    case listPipelines
    case getPipeline
    case cancelPipeline
    case rebuildPipeline
    case approvePipeline
    case rejectPipeline
    case listJobs
    case getJob
    case jobAttempts
    case jobLog
    case cancelJob
    case retryJob

    case listAgents
    case demand
    case forgetAgent
    case drainAgent

    case createOwnToken
    case listOwnTokens
    case revokeOwnToken

    case createIdentity
    case listIdentities
    case updateIdentity
    case disableIdentity
    case createIdentityToken
    case listIdentityTokens
    case revokeIdentityToken

    case listSecrets
    case setSecret
    case deleteSecret

    case listAudit
    case verifyAudit

    case setMetaData
    case getMetaData
    case listMetaData

    /// `gantry pipeline upload`: a running step adds steps to its own pipeline.
    case uploadPipelineSteps

    /// Artifacts: a job's token opens an upload session for one named file, appends its
    /// bytes (resumable from the stored offset), and completes it, which verifies the
    /// size and sha256 and records the artifact with its provenance.
    case createArtifactUpload
    case getArtifactUpload
    case appendArtifactUpload
    case completeArtifactUpload
    case listArtifacts
    case getArtifact
    case downloadArtifact

    /// Caches: resolved for a job by key and restore keys within the scopes its branch
    /// may read, uploaded through the artifact upload sessions, listed and cleared.
    case resolveCache
    case createCacheUpload
    case downloadCache
    case listCaches
    case clearCaches
    // Retention (issue 13): a kept pipeline's artifacts and logs are never collected.
    case keepPipeline
    case unkeepPipeline

    // Projects and their webhooks (docs/pipeline.md, "Triggers").
    case createProject
    case listProjects
    case getProject
    case deleteProject
    /// A push from a git server: authenticated by its signature, not by a token.
    case receiveWebhook
    case createSchedule
    case listSchedules
    case deleteSchedule

    /// Deployments: finished jobs of steps with `environment:`.
    case listDeployments
    /// The delivery (DORA) metrics computed from them.
    case deliveryMetrics
    /// A pipeline that deploys an earlier deployment's step and artifacts again.
    case rollbackEnvironment

    /// Outgoing webhooks (docs/operations.md, "Notifications"): endpoints an admin
    /// registers, and the log of what was delivered to each.
    case createNotification
    case listNotifications
    case deleteNotification
    case listNotificationDeliveries

    public var method: String {
        switch self {
        case .health, .metrics, .whoami, .openAPIDocument, .listPipelines, .getPipeline, .listJobs, .getJob, .jobAttempts, .jobLog,
            .listAgents, .demand, .listOwnTokens, .listIdentities, .listIdentityTokens, .listSecrets, .listAudit, .verifyAudit, .getMetaData,
            .listMetaData, .getArtifactUpload, .listArtifacts, .getArtifact, .downloadArtifact, .resolveCache,
            .downloadCache, .listCaches, .listProjects, .getProject, .listDeployments, .deliveryMetrics, .listSchedules,
            .listNotifications, .listNotificationDeliveries:
            return "GET"
        case .createProject, .receiveWebhook, .rollbackEnvironment, .createSchedule, .createNotification:
            return "POST"
        case .deleteProject, .deleteSchedule, .deleteNotification:
            return "DELETE"
        case .submitPipeline, .cancelPipeline, .rebuildPipeline, .approvePipeline, .rejectPipeline, .cancelJob, .retryJob,
            .forgetAgent, .drainAgent,
            .createOwnToken, .createIdentity, .createIdentityToken, .uploadPipelineSteps, .createArtifactUpload,
            .completeArtifactUpload, .createCacheUpload:
            return "POST"
        case .updateIdentity, .setSecret, .setMetaData, .keepPipeline:
            return "PUT"
        case .appendArtifactUpload:
            return "PATCH"
        case .revokeOwnToken, .disableIdentity, .revokeIdentityToken, .deleteSecret, .clearCaches, .unkeepPipeline:
            return "DELETE"
        }
    }

    /// The path as Hummingbird matches it; `{name}` is a parameter.
    public var path: String {
        switch self {
        case .health: return "/healthz"
        case .metrics: return "/metrics"
        case .whoami: return "/v1/whoami"
        case .openAPIDocument: return "/v1/openapi.json"
        case .submitPipeline, .listPipelines: return "/v1/pipelines"
        case .getPipeline: return "/v1/pipelines/{id}"
        case .cancelPipeline: return "/v1/pipelines/{id}/cancel"
        case .rebuildPipeline: return "/v1/pipelines/{id}/rebuild"
        case .approvePipeline: return "/v1/pipelines/{id}/approve"
        case .rejectPipeline: return "/v1/pipelines/{id}/reject"
        case .listJobs: return "/v1/jobs"
        case .getJob: return "/v1/jobs/{id}"
        case .jobAttempts: return "/v1/jobs/{id}/attempts"
        case .jobLog: return "/v1/jobs/{id}/log"
        case .cancelJob: return "/v1/jobs/{id}/cancel"
        case .retryJob: return "/v1/jobs/{id}/retry"
        case .listAgents: return "/v1/agents"
        case .demand: return "/v1/demand"
        // Agent ids contain a '/': `{host}/{slot}`, one path segment each.
        case .forgetAgent: return "/v1/agents/{host}/{slot}/forget"
        case .drainAgent: return "/v1/agents/{host}/{slot}/drain"
        case .createOwnToken, .listOwnTokens: return "/v1/tokens"
        case .revokeOwnToken: return "/v1/tokens/{id}"
        case .createIdentity, .listIdentities: return "/v1/identities"
        case .updateIdentity, .disableIdentity: return "/v1/identities/{name}"
        case .createIdentityToken, .listIdentityTokens: return "/v1/identities/{name}/tokens"
        case .revokeIdentityToken: return "/v1/identities/{name}/tokens/{id}"
        case .listSecrets: return "/v1/secrets"
        case .setSecret, .deleteSecret: return "/v1/secrets/{name}"
        case .listAudit: return "/v1/audit"
        case .verifyAudit: return "/v1/audit/verify"
        case .setMetaData, .getMetaData: return "/v1/pipelines/{id}/meta-data/{key}"
        case .listMetaData: return "/v1/pipelines/{id}/meta-data"
        case .uploadPipelineSteps: return "/v1/pipelines/{id}/steps"
        case .createArtifactUpload: return "/v1/jobs/{id}/artifacts"
        case .getArtifactUpload, .appendArtifactUpload: return "/v1/artifact-uploads/{id}"
        case .completeArtifactUpload: return "/v1/artifact-uploads/{id}/complete"
        case .listArtifacts: return "/v1/pipelines/{id}/artifacts"
        case .getArtifact: return "/v1/artifacts/{digest}"
        case .downloadArtifact: return "/v1/artifacts/{digest}/content"
        case .resolveCache, .createCacheUpload: return "/v1/jobs/{id}/cache"
        case .downloadCache: return "/v1/jobs/{id}/cache/{digest}/content"
        case .listCaches, .clearCaches: return "/v1/caches"
        case .keepPipeline, .unkeepPipeline: return "/v1/pipelines/{id}/keep"
        case .createProject, .listProjects: return "/v1/projects"
        case .getProject, .deleteProject: return "/v1/projects/{name}"
        case .receiveWebhook: return "/v1/hooks/{name}"
        case .createSchedule, .listSchedules: return "/v1/projects/{name}/schedules"
        case .deleteSchedule: return "/v1/projects/{name}/schedules/{id}"
        case .listDeployments: return "/v1/deployments"
        case .deliveryMetrics: return "/v1/metrics/dora"
        case .rollbackEnvironment: return "/v1/environments/{name}/rollback"
        case .createNotification, .listNotifications: return "/v1/notifications"
        case .deleteNotification: return "/v1/notifications/{id}"
        case .listNotificationDeliveries: return "/v1/notifications/{id}/deliveries"
        }
    }

    /// What the caller must hold; nil for `/healthz`, which reveals nothing, and for
    /// webhooks, which the sender's signature authenticates (`WebhookSignature`).
    public var permission: API.Permission? {
        switch self {
        case .health, .receiveWebhook: return nil
        case .listProjects, .getProject, .listDeployments, .deliveryMetrics, .listSchedules: return .read
        // A project starts pipelines as its creator, from pushes nobody reviews here.
        case .createProject, .deleteProject, .createSchedule, .deleteSchedule: return .manageProjects
        // The document is public in the repository, but the API is never open: any
        // token that may read may read it, and the middleware keeps its two exceptions.
        case .openAPIDocument: return .read
        case .metrics, .whoami, .listPipelines, .getPipeline, .listJobs, .getJob, .jobAttempts, .jobLog, .listAgents, .demand,
            .getMetaData, .listMetaData, .getArtifactUpload, .listArtifacts, .getArtifact, .downloadArtifact, .resolveCache,
            .downloadCache, .listCaches:
            return .read
        case .createOwnToken, .listOwnTokens, .revokeOwnToken: return .manageOwnTokens
        // Each runs a pipeline's code again, or steers what its later steps do, as
        // submitting does; deploying jobs also need the deploy permission for their
        // environment, checked by the handler.
        case .submitPipeline, .rebuildPipeline, .retryJob, .setMetaData, .rollbackEnvironment: return .submit
        // Written by a running job with its token (the handlers refuse a person's token:
        // an artifact's provenance is the job that made it).
        case .uploadPipelineSteps, .createArtifactUpload, .appendArtifactUpload, .completeArtifactUpload,
            .createCacheUpload:
            return .submit
        case .clearCaches: return .manageCaches
        // Keeping a pipeline pins its bytes past retention, as submitting one stores new
        // bytes: whoever may submit may keep (a release build) or let go.
        case .keepPipeline, .unkeepPipeline: return .submit
        // At least a developer; the block's own rule (`allowed:`, else deploy) is checked
        // by the handler against the block that waits.
        case .approvePipeline, .rejectPipeline: return .submit
        case .cancelPipeline, .cancelJob: return .cancel
        case .forgetAgent, .drainAgent: return .manageAgents
        case .createIdentity, .listIdentities, .updateIdentity, .disableIdentity, .createIdentityToken,
            .listIdentityTokens, .revokeIdentityToken:
            return .manageIdentities
        case .listSecrets, .setSecret, .deleteSecret: return .manageSecrets
        case .listAudit, .verifyAudit: return .readAudit
        // Endpoint URLs may carry credentials in their query, and a delivery's response
        // body is the receiver's: reading them is as sensitive as registering one.
        case .createNotification, .listNotifications, .deleteNotification, .listNotificationDeliveries:
            return .manageNotifications
        }
    }

    /// The audit action recorded for every call (allowed or refused), or nil for a read.
    /// Every route that changes state has one.
    public var auditAction: String? {
        switch self {
        case .health, .metrics, .whoami, .openAPIDocument, .listPipelines, .getPipeline, .listJobs, .getJob, .jobAttempts,
            .jobLog, .listAgents, .demand, .listOwnTokens, .listIdentities, .listIdentityTokens, .listSecrets, .listAudit, .getMetaData, .listMetaData,
            .getArtifactUpload, .listArtifacts, .getArtifact, .downloadArtifact, .resolveCache, .downloadCache, .listCaches,
            .listProjects, .getProject, .listDeployments, .deliveryMetrics, .listSchedules, .listNotifications,
            .listNotificationDeliveries:
            return nil
        case .createNotification: return "notification.create"
        case .deleteNotification: return "notification.delete"
        // Recorded by its handler ("pipeline.trigger"), with the project as the actor:
        // the router has no principal for it.
        case .receiveWebhook: return nil
        case .createProject: return "project.create"
        case .rollbackEnvironment: return "deployment.rollback"
        case .createSchedule: return "schedule.create"
        case .deleteSchedule: return "schedule.delete"
        case .deleteProject: return "project.delete"
        // The bytes of an open session are not yet anything: the session's creation and
        // its completion are the recorded changes, not every appended piece.
        case .appendArtifactUpload: return nil
        case .verifyAudit: return nil
        case .submitPipeline: return "pipeline.submit"
        case .cancelPipeline: return "pipeline.cancel"
        case .cancelJob: return "job.cancel"
        case .retryJob: return "job.retry"
        case .rebuildPipeline: return "pipeline.rebuild"
        case .approvePipeline: return "pipeline.approve"
        case .rejectPipeline: return "pipeline.reject"
        case .forgetAgent: return "agent.forget"
        case .drainAgent: return "agent.drain"
        case .createOwnToken, .createIdentityToken: return "token.create"
        case .revokeOwnToken, .revokeIdentityToken: return "token.revoke"
        case .createIdentity: return "identity.create"
        case .updateIdentity: return "identity.update"
        case .disableIdentity: return "identity.disable"
        case .setSecret: return "secret.set"
        case .deleteSecret: return "secret.delete"
        case .setMetaData: return "metadata.set"
        case .uploadPipelineSteps: return "pipeline.upload"
        case .createArtifactUpload: return "artifact.upload"
        case .completeArtifactUpload: return "artifact.store"
        case .createCacheUpload: return "cache.upload"
        case .clearCaches: return "cache.clear"
        case .keepPipeline: return "pipeline.keep"
        case .unkeepPipeline: return "pipeline.unkeep"
        }
    }

    /// Whether a step's job token (`GANTRY_JOB_TOKEN`) may call this route at all; every
    /// other route refuses a job token with 403. The router then confines the token to
    /// what its `{id}` names: its own pipeline (`/v1/pipelines/{id}/…`), its own job
    /// (`/v1/jobs/{id}/…`), or an upload session its job opened; a download by digest is
    /// checked by its handler against the artifacts the job's pipeline may read.
    public var jobTokenAllowed: Bool {
        switch self {
        case .setMetaData, .getMetaData, .listMetaData, .uploadPipelineSteps, .createArtifactUpload, .getArtifactUpload,
            .appendArtifactUpload, .completeArtifactUpload, .listArtifacts, .downloadArtifact, .resolveCache,
            .createCacheUpload, .downloadCache:
            return true
        default: return false
        }
    }

    /// The path with its parameters filled in, percent-encoding each value.
    public func path(_ parameters: [String: String]) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { segment -> String in
            guard segment.hasPrefix("{"), segment.hasSuffix("}"), let value = parameters[String(segment.dropFirst().dropLast())]
            else { return String(segment) }
            return Self.percentEncode(value)
        }.joined(separator: "/")
    }

    static func percentEncode(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if byte < 0x80 && (c.isLetter || c.isNumber || "-._~".contains(c)) {
                out.append(c)
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
