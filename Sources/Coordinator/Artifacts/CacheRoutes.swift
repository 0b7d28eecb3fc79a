import Foundation
import GantryProtocol
import Hummingbird
import NIOCore

/// The cache routes (`APIRoute.resolveCache` … `clearCaches`):
///
/// - `GET /v1/jobs/{id}/cache?key=K&restore_key=P…`: `API.CacheHit` from the scopes the
///   job's branch reads (`CacheScope.readable`), 404 `cache_miss` otherwise; a hit's
///   `last_used_at` moves (least recently used eviction). 422 `no_branch` (as for a
///   save) when the job's pipeline has no branch: branchless pipelines have no cache.
/// - `POST /v1/jobs/{id}/cache` (job token, `API.CreateCacheUpload`): an upload session in
///   the job's own branch scope, through the artifact upload routes; born complete when
///   the key is already saved there (the first save wins) or the bytes are held.
/// - `GET /v1/jobs/{id}/cache/{digest}/content`: an archive the job may read.
/// - `GET /v1/caches[?scope=S]`, `DELETE /v1/caches[?scope=S&key=K]` (manage_caches).
extension APIRouter {
    static let maximumCacheListing = 10_000

    static func addCacheRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let audit = dependencies.audit
        let core = dependencies.core
        let service = dependencies.artifacts
        let identities = dependencies.identities

        router.on(.resolveCache, audit: audit) { request, context -> Response in
            guard let service else { return artifactsUnavailable() }
            let id = try context.parameter("id")
            guard let key = request.uri.queryParameters.get("key") else {
                return APIResponses.error(.badRequest, code: "bad_request", message: "?key= names the cache key to resolve")
            }
            let restoreKeys = request.uri.queryParameters.getAll("restore_key")
            guard restoreKeys.count <= ArtifactLimits.maximumRestoreKeys else {
                return APIResponses.error(
                    .badRequest, code: "bad_request", message: "at most \(ArtifactLimits.maximumRestoreKeys) restore keys")
            }
            for candidate in [key] + restoreKeys {
                if let problem = ArtifactLimits.cacheKeyProblem(candidate) {
                    return APIResponses.error(.unprocessableContent, code: "invalid_cache_key", message: problem)
                }
            }
            guard let scopes = try readableScopes(jobID: id, core: core, service: service) else { return noJob(id) }
            guard !scopes.isEmpty else { return noBranch() }
            let entries = try service.store.cacheEntries(scopes: scopes.map(\.name), limit: maximumCacheListing * 2)
            guard let resolved = CacheResolution.resolve(
                key: key, restoreKeys: restoreKeys, scopes: scopes, entries: entries.map(\.candidate)),
                var entry = entries.first(where: { $0.scope == resolved.entry.scope && $0.key == resolved.entry.key })
            else {
                return APIResponses.error(
                    .notFound, code: "cache_miss",
                    message: "no cache under `\(key.logSafe(maximum: 128))` or its restore keys in \(scopes.map(\.name).joined(separator: ", "))")
            }
            entry.lastUsedAt = Date()
            try service.store.touchCache(scope: entry.scope, key: entry.key, at: entry.lastUsedAt)
            return APIResponses.json(API.CacheHit(entry: view(entry), exact: resolved.exact))
        }

        router.on(.createCacheUpload, audit: audit) { request, context -> Response in
            guard let service else { return artifactsUnavailable() }
            let grant: Principal.JobGrant
            switch jobGrant(context, doing: "save caches") {
            case .success(let value): grant = value
            case .failure(let refusal): return refusal.response
            }
            let body: API.CreateCacheUpload
            switch await decodeSmall(API.CreateCacheUpload.self, request, example: #"{"key": "swiftpm-…", "size": 123, "sha256": "…"}"#) {
            case .success(let value): body = value
            case .failure(let refusal): return refusal.response
            }
            if let problem = ArtifactLimits.cacheKeyProblem(body.key) {
                return APIResponses.error(.unprocessableContent, code: "invalid_cache_key", message: problem)
            }
            context.audit.add("key", body.key.logSafe(maximum: ArtifactLimits.maximumCacheKeyBytes))
            let limit = min(service.limits.maximumArtifactBytes, service.limits.cacheScopeBytes)
            if let refusal = checkUploadShape(size: body.size, sha256: body.sha256, limit: limit) { return refusal }
            guard let job = try core.store.job(id: grant.jobID), let pipeline = try core.store.pipeline(id: job.pipelineId) else {
                return noJob(grant.jobID)
            }
            // Written only to its own branch's scope: what a feature branch saves never
            // reaches the default branch's cache.
            guard let scope = CacheScope.writable(branch: pipeline.branch)?.name else { return noBranch() }
            context.audit.add("scope", scope.logSafe(maximum: 256))
            // Every branch restores the default branch's cache, and the branch is only what
            // the submitter said: saving there takes the deploy permission, as shipping
            // that branch does, so a developer's build cannot poison every branch's cache.
            if let refusal = try protectedScopeRefusal(scope, pipeline: pipeline, service: service, identities: identities) {
                return refusal
            }
            let now = Date()
            await service.sweepOffPool(now: now)
            if let existing = try service.store.cacheEntry(scope: scope, key: body.key) {
                return APIResponses.json(
                    API.ArtifactUpload(
                        id: ArtifactService.newSessionID(), offset: UInt64(existing.size), size: UInt64(existing.size),
                        sha256: existing.sha256, cache: view(existing)))
            }
            let row = StoredCacheEntry(scope: scope, key: body.key, sha256: body.sha256, size: Int64(body.size), createdAt: now, lastUsedAt: now)
            // The shortcut only for bytes this job may already read (a cache of its scopes):
            // knowing a digest is no proof of holding its bytes.
            let scopes = CacheScope.readable(branch: pipeline.branch, defaultBranch: service.limits.defaultBranch).map(\.name)
            let saved = try await service.withBlobHeld { () throws -> (StoredCacheEntry, orphans: [String])? in
                guard service.blobs.hasBlob(body.sha256),
                    try service.store.cacheExists(sha256: body.sha256, size: Int64(body.size), scopes: scopes)
                else { return nil }
                return try service.store.saveCache(row, scopeLimit: service.limits.cacheScopeBytes)
            }
            if let saved {
                let entry = saved.0
                await service.deleteOrphans(saved.orphans)
                return APIResponses.json(
                    API.ArtifactUpload(
                        id: ArtifactService.newSessionID(), offset: UInt64(entry.size), size: UInt64(entry.size), sha256: entry.sha256,
                        cache: view(entry)), status: .created)
            }
            return try await openSession(
                service, kind: .cache, grant: grant, name: body.key, scope: scope, size: body.size, sha256: body.sha256, now: now,
                context: context)
        }

        router.on(.downloadCache, audit: audit) { request, context -> Response in
            guard let service else { return artifactsUnavailable() }
            let (id, digest) = try (context.parameter("id"), context.parameter("digest"))
            guard ArtifactDigest.isValid(digest) else { return badDigest() }
            guard let scopes = try readableScopes(jobID: id, core: core, service: service) else { return noJob(id) }
            guard try service.store.cacheExists(sha256: digest, size: nil, scopes: scopes.map(\.name)) else {
                return APIResponses.error(
                    .notFound, code: "not_found",
                    message: "no cache with sha256 \(digest) in the scopes job \(id.logSafe(maximum: 64)) reads")
            }
            return try serveBlob(digest, request, service, metrics: core.metrics, kind: "cache")
        }

        router.on(.listCaches, audit: audit) { request, _ -> Response in
            guard let service else { return artifactsUnavailable() }
            let scope = request.uri.queryParameters.get("scope")
            let rows = try service.store.cacheEntries(scopes: scope.map { [$0] } ?? [], limit: maximumCacheListing)
            return APIResponses.json(API.CacheList(caches: rows.map(view)))
        }

        router.on(.clearCaches, audit: audit) { request, context -> Response in
            guard let service else { return artifactsUnavailable() }
            let scope = request.uri.queryParameters.get("scope")
            let key = request.uri.queryParameters.get("key")
            if let scope { context.audit.add("scope", scope.logSafe(maximum: 256)) }
            if let key { context.audit.add("key", key.logSafe(maximum: ArtifactLimits.maximumCacheKeyBytes)) }
            let (rows, orphans) = try service.store.clearCaches(scope: scope, key: key)
            await service.deleteOrphans(orphans)
            context.audit.add("cleared", String(rows.count))
            return APIResponses.json(API.CacheList(caches: rows.map(view)))
        }
    }

    /// The scopes a job's branch reads, own first; nil when there is no such job.
    /// Every branch restores the default branch's cache, and the branch is only what the
    /// submitter said: saving there takes a submitter that may deploy everywhere, as
    /// shipping that branch does, so a developer's build (or a staging-only deployer's)
    /// cannot poison what production deploys restore. Checked when a save opens and again
    /// when it completes (the submitter's roles may have changed meanwhile). Nil: allowed.
    static func protectedScopeRefusal(
        _ scope: String, pipeline: StoredPipeline, service: ArtifactService, identities: any IdentityStore
    ) throws -> Response? {
        guard scope == CacheScope(branch: service.limits.defaultBranch).name else { return nil }
        let (submitter, who) = try PipelineSubmitter.principal(of: pipeline, identities: identities)
        guard !submitter.mayDeployEverywhere else { return nil }
        return APIResponses.error(
            .forbidden, code: "cache_scope_protected",
            message: "\(scope) is the default branch's cache, which every branch restores: only pipelines submitted by an "
                + "identity that may deploy everywhere (admin, or deployer naming no environments) save to it, and this job "
                + "acts for \(who)")
    }

    static func readableScopes(jobID: String, core: CoordinatorCore, service: ArtifactService) throws -> [CacheScope]? {
        guard let job = try core.store.job(id: jobID), let pipeline = try core.store.pipeline(id: job.pipelineId) else { return nil }
        return CacheScope.readable(branch: pipeline.branch, defaultBranch: service.limits.defaultBranch)
    }

    /// 422 for a job of a pipeline submitted without a branch: it has no cache scope. The
    /// agent reports cache problems as notes, so the job runs on, cold.
    static func noBranch() -> Response {
        APIResponses.error(
            .unprocessableContent, code: "no_branch",
            message: "this job's pipeline has no branch, so it has no cache: caches are scoped by branch, and one scope shared by "
                + "every branchless submission could be poisoned by any of them (submit with --branch to use caches)")
    }

    static func noJob(_ id: String) -> Response {
        APIResponses.error(.notFound, code: "not_found", message: "no job \(id.logSafe(maximum: 64))")
    }
}
