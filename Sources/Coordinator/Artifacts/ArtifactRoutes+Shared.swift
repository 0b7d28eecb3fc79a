import Foundation
import GantryProtocol
import GantryTransferRules
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// What the artifact and cache routes share: who may upload, small bodies, provenance,
/// sessions, the JSON views, the refusals, and serving a blob's bytes.
extension APIRouter {
    struct Refusal: Error {
        var response: Response
    }

    /// The job of a job token, or a 403 for anyone else: what a job uploads is recorded
    /// with the job as its provenance, which a person's token cannot give.
    static func jobGrant(_ context: GantryRequestContext, doing what: String) -> Result<Principal.JobGrant, Refusal> {
        if let grant = context.principal?.job { return .success(grant) }
        context.audit.add("reason", "not a job token")
        return .failure(
            Refusal(
                response: APIResponses.error(
                    .forbidden, code: "forbidden",
                    message: "only a running job may \(what), with its job token (GANTRY_JOB_TOKEN): what it stores is "
                        + "recorded with the job that made it, which a person's token (the 'submit' permission) cannot give")))
    }

    static func decodeSmall<T: Decodable>(_ type: T.Type, _ request: Request, example: String) async -> Result<T, Refusal> {
        let buffer: ByteBuffer
        switch await BoundedBody.collect(request, upTo: maximumUploadRequest, what: "the body") {
        case .success(let collected): buffer = collected
        case .failure(let tooLarge): return .failure(Refusal(response: tooLarge.response))
        }
        guard let value = try? API.decoder.decode(T.self, from: Data(buffer: buffer)) else {
            return .failure(Refusal(response: APIResponses.error(.badRequest, code: "bad_request", message: "the body must be JSON like \(example)")))
        }
        return .success(value)
    }

    static func checkUploadShape(size: UInt64, sha256: String, limit: UInt64) -> Response? {
        guard ArtifactDigest.isValid(sha256) else { return badDigest() }
        guard size <= limit else {
            return APIResponses.error(
                .contentTooLarge, code: "too_large",
                message: "\(size) bytes is more than this coordinator stores in one file (\(limit) bytes, `serve --max-artifact-size`)")
        }
        return nil
    }

    /// Where a job's artifacts come from: its pipeline, step, commit and the agent of its attempt.
    struct Provenance {
        var pipelineID: String
        var stepKey: String
        var commit: String
        var agentID: String
    }

    static func provenance(of grant: Principal.JobGrant, core: CoordinatorCore) throws -> Provenance? {
        guard let job = try core.store.job(id: grant.jobID) else { return nil }
        let pipeline = try core.store.pipeline(id: job.pipelineId)
        let attempt = try core.store.attempts(jobID: job.id).last { $0.attempt == Int(grant.attempt) }
        return Provenance(
            pipelineID: job.pipelineId, stepKey: job.key, commit: pipeline?.commit ?? "",
            agentID: attempt?.agentId ?? job.agentId ?? "")
    }

    /// The pipelines whose artifacts a job reads: its own, and the one it promotes.
    static func readablePipelines(_ grant: Principal.JobGrant, core: CoordinatorCore) throws -> [String] {
        let pipeline = try core.store.pipeline(id: grant.pipelineID)
        return [grant.pipelineID] + (pipeline?.artifactsFrom.map { [$0] } ?? [])
    }

    /// The artifacts `pipeline` resolves, of one step or all: its own, and for a
    /// promoted pipeline those of the source, by one rule that keeps the answer
    /// unambiguous (`PromotedArtifacts.resolve`): a step key the source has resolves to
    /// the source's artifacts only. Promotion means exactly the promoted digests, so a
    /// step of the promoting pipeline that happens to share the key never shadows them
    /// (the agent keeps the newest row per name, the CLI the first listed: both would
    /// otherwise pick by accident).
    static func resolvedArtifacts(
        of pipeline: StoredPipeline, step: String?, service: ArtifactService, core: CoordinatorCore
    ) throws -> [StoredArtifact] {
        let own = try service.store.artifacts(pipelineID: pipeline.id, stepKey: step, limit: maximumArtifactListing)
        guard let source = pipeline.artifactsFrom else { return own }
        let promoted = try service.store.artifacts(pipelineID: source, stepKey: step, limit: maximumArtifactListing)
        let sourceKeys = Set(try core.store.jobs(pipelineID: source).map(\.key))
        return Array(PromotedArtifacts.resolve(own: own, source: promoted, sourceKeys: sourceKeys).prefix(maximumArtifactListing))
    }

    /// Whether a deploying job's download of `digest` is a deployment: the digest is one
    /// its `download:` rules resolve (by step, and by path when the glob parses), or one
    /// of the pipeline its pipeline promotes (`gantry artifact download` in a promoting
    /// step needs no `download:` rule).
    static func deploys(_ digest: String, job: StoredJob, service: ArtifactService, core: CoordinatorCore) throws -> Bool {
        guard let pipeline = try core.store.pipeline(id: job.pipelineId) else { return false }
        if let source = pipeline.artifactsFrom,
            try service.store.artifactExists(sha256: digest, size: nil, inPipelines: [source])
        {
            return true
        }
        for rule in job.transfers.downloads {
            let glob = try? ArtifactGlob(rule.path)
            let rows = try resolvedArtifacts(of: pipeline, step: rule.step, service: service, core: core)
            if rows.contains(where: { $0.sha256 == digest && (glob?.matches($0.name) ?? true) }) { return true }
        }
        return false
    }

    static func openSession(
        _ service: ArtifactService, kind: StoredArtifactUpload.Kind, grant: Principal.JobGrant, name: String, scope: String,
        size: UInt64, sha256: String, now: Date, context: GantryRequestContext
    ) async throws -> Response {
        let row = StoredArtifactUpload(
            id: ArtifactService.newSessionID(), kind: kind, jobId: grant.jobID, attempt: Int(grant.attempt), name: name, scope: scope,
            size: Int64(size), sha256: sha256, offset: 0, createdAt: now, updatedAt: now)
        let opened: StoredArtifactUpload?
        let dropped: [StoredArtifactUpload]
        do {
            try service.blobs.createPart(row.id)
            (opened, dropped) = try service.store.openUpload(row, maximumOpen: service.limits.maximumOpenSessionsPerJob)
        } catch {
            service.blobs.removePart(row.id)
            if let full = DiskFull.response(error) { return full }
            throw error
        }
        if !dropped.isEmpty {
            await service.removeParts(of: dropped)
            context.audit.add("dropped", "\(dropped.count) sessions of earlier attempts")
        }
        guard let opened else {
            service.blobs.removePart(row.id)
            return APIResponses.error(
                .tooManyRequests, code: "too_many_sessions",
                message: "job \(grant.jobID) already holds \(service.limits.maximumOpenSessionsPerJob) open upload sessions: "
                    + "complete them first")
        }
        context.audit.add("session", opened.id)
        guard opened.id == row.id else {
            // Asked again for the same file: resume the session already open.
            service.blobs.removePart(row.id)
            return APIResponses.json(view(opened), status: .ok)
        }
        return APIResponses.json(view(row), status: .created)
    }

    /// The sha256 and length of a complete session's part file: from the state its PATCHes
    /// kept (`PartDigests`) when it covers all `size` bytes and the file holds exactly
    /// those, else by reading the file (after a coordinator restart, say).
    static func partDigest(_ id: String, size: Int64, _ service: ArtifactService) async throws -> (digest: String, size: Int64) {
        if let running = service.partDigests.take(id, coveringBytes: size), service.blobs.partSize(id) == size {
            return (running.finalize(), running.bytes)
        }
        return try await service.blobs.digest(ofPart: id)
    }

    /// The session `id` if the caller may see it: a job token only its own job's.
    static func ownedSession(
        _ id: String, _ service: ArtifactService, _ context: GantryRequestContext
    ) throws -> (row: StoredArtifactUpload, refusal: Response?)? {
        guard id.utf8.count <= 64, let row = try service.store.upload(id: id) else { return nil }
        context.audit.set(object: "artifact-upload:\(id)")
        if let grant = context.principal?.job, row.jobId != grant.jobID || row.attempt != Int(grant.attempt) {
            return (
                row,
                APIResponses.error(
                    .forbidden, code: "forbidden",
                    message: "upload session \(id) belongs to another job (or attempt) than job \(grant.jobID)#\(grant.attempt)")
            )
        }
        return (row, nil)
    }

    static func view(_ row: StoredArtifactUpload) -> API.ArtifactUpload {
        API.ArtifactUpload(id: row.id, offset: UInt64(row.offset), size: UInt64(row.size), sha256: row.sha256)
    }

    static func view(_ row: StoredArtifact) -> API.Artifact {
        API.Artifact(
            sha256: row.sha256, name: row.name, size: UInt64(max(row.size, 0)), pipelineId: row.pipelineId, stepKey: row.stepKey,
            jobId: row.jobId, attempt: row.attempt, commit: row.commit, agentId: row.agentId, createdAt: row.createdAt)
    }

    static func view(_ row: StoredCacheEntry) -> API.CacheEntry {
        API.CacheEntry(
            scope: row.scope, key: row.key, sha256: row.sha256, size: UInt64(max(row.size, 0)), createdAt: row.createdAt,
            lastUsedAt: row.lastUsedAt)
    }

    /// A session that needs no bytes: these were already stored under this name.
    static func bornComplete(_ row: StoredArtifact, session: String? = nil) -> API.ArtifactUpload {
        API.ArtifactUpload(
            id: session ?? ArtifactService.newSessionID(), offset: UInt64(row.size), size: UInt64(row.size), sha256: row.sha256,
            artifact: view(row))
    }

    static func artifactWriteResponse(
        _ write: ArtifactWrite, service: ArtifactService, status: HTTPResponse.Status, session: String? = nil
    ) async -> Response {
        let limits = service.limits
        switch write {
        case .stored(let row): return APIResponses.json(bornComplete(row, session: session), status: status)
        case .replaced(let row, let previous):
            // A retry's bytes took the name: the earlier attempt's blob goes unless named elsewhere.
            if previous.sha256 != row.sha256 { await service.deleteOrphans([previous.sha256]) }
            return APIResponses.json(bornComplete(row, session: session), status: status)
        case .conflict(let existing): return artifactExists(existing)
        case .full:
            return APIResponses.error(
                .unprocessableContent, code: "too_many_artifacts",
                message: "the job already stored \(limits.maximumArtifactsPerJob) artifacts, the most one job may "
                    + "(`serve --max-artifacts-per-job`): archive many small files into one")
        }
    }

    static func artifactExists(_ existing: StoredArtifact) -> Response {
        APIResponses.error(
            .conflict, code: "artifact_exists",
            message: "attempt \(existing.attempt) of job \(existing.jobId) already stored `\(existing.name.logSafe(maximum: 256))` "
                + "with sha256 \(existing.sha256): an artifact is immutable within an attempt (a retry may replace it), "
                + "upload other bytes under another name")
    }

    /// 409 with the session itself, so the sender resumes from its offset.
    static func sessionConflict(_ row: StoredArtifactUpload, _ reason: String) -> Response {
        var response = APIResponses.json(view(row), status: .conflict)
        response.headers[uploadOffsetHeader] = String(row.offset)
        response.headers[HTTPField.Name("X-Gantry-Reason")!] = reason
        return response
    }

    static func noSession(_ id: String) -> Response {
        APIResponses.error(
            .notFound, code: "not_found",
            message: "no open upload session \(id.logSafe(maximum: 64)) (completed, expired or never opened): open a new one")
    }

    static func badDigest() -> Response {
        APIResponses.error(.badRequest, code: "bad_request", message: "a digest is 64 lowercase hex characters of a sha256")
    }

    static func artifactsUnavailable() -> Response {
        APIResponses.error(.serviceUnavailable, code: "unavailable", message: "this coordinator does not store artifacts")
    }

    /// A blob's bytes, streamed from its file: all of them (200), or from a `Range` (206).
    static func serveBlob(
        _ digest: String, _ request: Request, _ service: ArtifactService, metrics: CoordinatorMetrics, kind: String
    ) throws -> Response {
        let reader: BlobReader
        do {
            reader = try service.blobs.openBlob(digest)
        } catch {
            service.logger.error("an artifact's blob is missing", metadata: ["sha256": "\(digest)", "error": "\(error)"])
            return APIResponses.error(.internalServerError, code: "blob_missing", message: "the bytes of sha256 \(digest) are missing")
        }
        let size = reader.size
        var status = HTTPResponse.Status.ok
        var first: Int64 = 0
        var last = size - 1
        var headers: HTTPFields = [
            .contentType: "application/octet-stream", .acceptRanges: "bytes", sha256Header: digest,
        ]
        if let range = request.headers[.range] {
            guard let (from, to) = ByteRange.parse(range, size: size) else {
                reader.finish()
                headers[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            }
            (first, last, status) = (from, to, .partialContent)
            headers[.contentRange] = "bytes \(from)-\(to)/\(size)"
        }
        let length = max(last - first + 1, 0)
        let (from, through) = (first, last)
        return Response(
            status: status, headers: headers,
            body: ResponseBody(contentLength: Int(length)) { writer in
                defer { reader.finish() }
                if length > 0 { try await reader.stream(from: from, through: through) { try await writer.write($0) } }
                try await writer.finish(nil)
                metrics.recordArtifactBytes(served: Int(length), kind: kind)
            })
    }
}

