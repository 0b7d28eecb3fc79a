import Foundation
import GantryProtocol
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// The artifact routes (`APIRoute.createArtifactUpload` … `downloadArtifact`):
///
/// - `POST /v1/jobs/{id}/artifacts` (job token): open, or resume, an upload session for
///   one named file (`API.CreateArtifactUpload`); 201 with `API.ArtifactUpload`, born
///   complete when the digest is already stored or the job already stored these bytes
///   under this name; 409 `artifact_exists` for other bytes under the name.
/// - `GET /v1/artifact-uploads/{id}`: the session and its offset.
/// - `PATCH /v1/artifact-uploads/{id}` (job token, `Upload-Offset: N`): the body is
///   streamed into the part file as it arrives; 409 with the session when N is not its
///   offset (or another request is writing it); 413 past the declared size.
/// - `POST /v1/artifact-uploads/{id}/complete` (job token): verifies size and sha256 by
///   reading the part file, stores the blob once and records the artifact.
/// - `GET /v1/pipelines/{id}/artifacts[?step=KEY]`, `GET /v1/artifacts/{digest}`,
///   `GET /v1/artifacts/{digest}/content` (`Range: bytes=N-[M]`, `X-Gantry-Sha256`).
extension APIRouter {
    /// Longest JSON body of a session's creation: a name of 1,024 bytes, escaped.
    static let maximumUploadRequest = 16 * 1024
    /// Most artifacts one listing or one provenance answer holds.
    static let maximumArtifactListing = 10_000
    static let uploadOffsetHeader = HTTPField.Name("Upload-Offset")!
    static let sha256Header = HTTPField.Name("X-Gantry-Sha256")!

    static func addArtifactRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let audit = dependencies.audit
        let core = dependencies.core
        let service = dependencies.artifacts

        router.on(.createArtifactUpload, audit: audit) { request, context -> Response in
            guard let service else { return artifactsUnavailable() }
            let grant: Principal.JobGrant
            switch jobGrant(context, doing: "upload artifacts") {
            case .success(let value): grant = value
            case .failure(let refusal): return refusal.response
            }
            let body: API.CreateArtifactUpload
            switch await decodeSmall(API.CreateArtifactUpload.self, request, example: #"{"name": "dist/app.tar.gz", "size": 123, "sha256": "…"}"#) {
            case .success(let value): body = value
            case .failure(let refusal): return refusal.response
            }
            context.audit.add("name", body.name.logSafe(maximum: ArtifactName.maximumBytes))
            if let problem = ArtifactName.problem(body.name) {
                return APIResponses.error(.unprocessableContent, code: "invalid_artifact", message: problem)
            }
            if let refusal = checkUploadShape(size: body.size, sha256: body.sha256, limit: service.limits.maximumArtifactBytes) {
                return refusal
            }
            let now = Date()
            service.sweep(now: now)
            guard let provenance = try provenance(of: grant, core: core) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no job \(grant.jobID)")
            }
            context.audit.set(object: "job:\(grant.jobID)")
            if let existing = try service.store.artifact(jobID: grant.jobID, name: body.name) {
                if existing.sha256 == body.sha256 { return APIResponses.json(bornComplete(existing), status: .ok) }
                return artifactExists(existing)
            }
            let row = StoredArtifact(
                sha256: body.sha256, name: body.name, size: Int64(body.size), pipelineId: provenance.pipelineID,
                stepKey: provenance.stepKey, jobId: grant.jobID, attempt: Int(grant.attempt), commit: provenance.commit,
                agentId: provenance.agentID, createdAt: now)
            // Bytes already held: nothing to send, the name is recorded at once.
            let held = try service.blobs.withBlobHeld { () throws -> ArtifactWrite? in
                guard service.blobs.hasBlob(body.sha256) else { return nil }
                return try service.store.storeArtifact(row, maximumPerJob: service.limits.maximumArtifactsPerJob)
            }
            if let held {
                context.audit.add("stored", "existing blob")
                return artifactWriteResponse(held, limits: service.limits, status: .created)
            }
            return try openSession(
                service, kind: .artifact, grant: grant, name: body.name, scope: "", size: body.size, sha256: body.sha256, now: now,
                context: context)
        }

        router.on(.getArtifactUpload, audit: audit) { _, context -> Response in
            guard let service else { return artifactsUnavailable() }
            let id = try context.parameter("id")
            guard let session = try ownedSession(id, service, context) else { return noSession(id) }
            if let refusal = session.refusal { return refusal }
            return APIResponses.json(view(session.row))
        }

        router.on(.appendArtifactUpload, audit: audit) { request, context -> Response in
            guard let service else { return artifactsUnavailable() }
            if case .failure(let refusal) = jobGrant(context, doing: "upload artifacts") { return refusal.response }
            let id = try context.parameter("id")
            guard let found = try ownedSession(id, service, context) else { return noSession(id) }
            if let refusal = found.refusal { return refusal }
            guard let header = request.headers[uploadOffsetHeader], let offset = UInt64(header), offset <= UInt64(Int64.max) else {
                return APIResponses.error(
                    .badRequest, code: "bad_request", message: "PATCH needs an `Upload-Offset: N` header with the session's offset")
            }
            guard service.claim(id) else {
                return sessionConflict(found.row, "another request is writing this session; retry from its offset")
            }
            defer { service.release(id) }
            // Read again under the claim: a request that just ended may have moved it.
            guard let session = try service.store.upload(id: id) else { return noSession(id) }
            guard offset == UInt64(session.offset) else {
                return sessionConflict(session, "Upload-Offset \(offset) is not the session's offset \(session.offset): resume from it")
            }
            let writer = try await service.blobs.openPart(id, at: session.offset)
            var tooLarge = false
            var failure: (any Error)?
            do {
                for try await buffer in request.body {
                    guard writer.offset + Int64(buffer.readableBytes) <= session.size else {
                        tooLarge = true
                        break
                    }
                    try await writer.write(buffer)
                }
            } catch {
                // A dropped connection: keep what arrived, so the sender resumes from it.
                failure = error
            }
            await writer.finish()
            try service.store.moveUpload(id: id, offset: writer.offset, at: Date())
            if let failure { throw failure }
            var moved = session
            moved.offset = writer.offset
            if tooLarge {
                return APIResponses.error(
                    .contentTooLarge, code: "too_large",
                    message: "the body goes past the session's declared size of \(session.size) bytes; stored up to \(writer.offset)")
            }
            return APIResponses.json(view(moved))
        }

        router.on(.completeArtifactUpload, audit: audit) { _, context -> Response in
            guard let service else { return artifactsUnavailable() }
            if case .failure(let refusal) = jobGrant(context, doing: "upload artifacts") { return refusal.response }
            let id = try context.parameter("id")
            guard let found = try ownedSession(id, service, context) else { return noSession(id) }
            if let refusal = found.refusal { return refusal }
            guard service.claim(id) else { return sessionConflict(found.row, "another request is writing this session") }
            defer { service.release(id) }
            guard let session = try service.store.upload(id: id) else { return noSession(id) }
            context.audit.add("name", session.name.logSafe(maximum: ArtifactName.maximumBytes))
            context.audit.add("sha256", session.sha256)
            guard session.offset == session.size else {
                return sessionConflict(session, "the session holds \(session.offset) of \(session.size) bytes: send the rest first")
            }
            let (digest, size) = try await service.blobs.digest(ofPart: id)
            guard digest == session.sha256, size == session.size else {
                // Its bytes are not what it declared: nothing of it can be kept.
                try service.store.deleteUpload(id: id)
                service.blobs.removePart(id)
                return APIResponses.error(
                    .unprocessableContent, code: "digest_mismatch",
                    message: "the uploaded bytes (\(size) bytes, sha256 \(digest)) are not the declared \(session.size) bytes with "
                        + "sha256 \(session.sha256): the session is discarded, open a new one")
            }
            try await service.blobs.place(part: id, as: digest)
            let response: Response
            switch session.kind {
            case .artifact:
                guard let grant = context.principal?.job, let provenance = try provenance(of: grant, core: core) else {
                    return APIResponses.error(.notFound, code: "not_found", message: "no job \(session.jobId)")
                }
                let row = StoredArtifact(
                    sha256: digest, name: session.name, size: size, pipelineId: provenance.pipelineID, stepKey: provenance.stepKey,
                    jobId: session.jobId, attempt: session.attempt, commit: provenance.commit, agentId: provenance.agentID,
                    createdAt: Date())
                response = artifactWriteResponse(
                    try service.store.storeArtifact(row, maximumPerJob: service.limits.maximumArtifactsPerJob),
                    limits: service.limits, status: .ok, session: id)
            case .cache:
                let now = Date()
                let (entry, orphans) = try service.store.saveCache(
                    StoredCacheEntry(scope: session.scope, key: session.name, sha256: digest, size: size, createdAt: now, lastUsedAt: now),
                    scopeLimit: service.limits.cacheScopeBytes)
                service.deleteOrphans(orphans)
                response = APIResponses.json(
                    API.ArtifactUpload(id: id, offset: UInt64(size), size: UInt64(size), sha256: digest, cache: view(entry)))
            }
            try service.store.deleteUpload(id: id)
            // A blob no row took (a conflict, a full job) is not kept either.
            service.deleteOrphans([digest])
            return response
        }

        router.on(.listArtifacts, audit: audit) { request, context -> Response in
            guard let service else { return artifactsUnavailable() }
            let id = try context.parameter("id")
            guard let pipeline = try core.store.pipeline(id: id) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no pipeline \(id.logSafe(maximum: 128))")
            }
            let step = request.uri.queryParameters.get("step")
            var rows = try service.store.artifacts(pipelineID: id, stepKey: step, limit: maximumArtifactListing)
            if let source = pipeline.artifactsFrom {
                rows += try service.store.artifacts(pipelineID: source, stepKey: step, limit: maximumArtifactListing)
            }
            return APIResponses.json(
                API.ArtifactList(pipelineId: id, promotedFrom: pipeline.artifactsFrom, artifacts: rows.prefix(maximumArtifactListing).map(view)))
        }

        router.on(.getArtifact, audit: audit) { _, context -> Response in
            guard let service else { return artifactsUnavailable() }
            let digest = try context.parameter("digest")
            guard ArtifactDigest.isValid(digest) else { return badDigest() }
            let rows = try service.store.artifacts(sha256: digest, limit: maximumArtifactListing)
            guard let first = rows.first else {
                return APIResponses.error(.notFound, code: "not_found", message: "no artifact has sha256 \(digest)")
            }
            let deployments = try service.store.deployments(sha256: digest, limit: maximumArtifactListing).map { row, state in
                API.ArtifactDeployment(
                    pipelineId: row.pipelineId, jobId: row.jobId, stepKey: row.stepKey, environment: row.environment, state: state,
                    at: row.at)
            }
            return APIResponses.json(
                API.ArtifactDetail(sha256: digest, size: UInt64(first.size), provenance: rows.map(view), deployments: deployments))
        }

        router.on(.downloadArtifact, audit: audit) { request, context -> Response in
            guard let service else { return artifactsUnavailable() }
            let digest = try context.parameter("digest")
            guard ArtifactDigest.isValid(digest) else { return badDigest() }
            if let grant = context.principal?.job {
                // A job reads the artifacts of its own pipeline and of the one it promotes.
                let pipeline = try core.store.pipeline(id: grant.pipelineID)
                let readable = [grant.pipelineID] + (pipeline?.artifactsFrom.map { [$0] } ?? [])
                guard try service.store.artifactExists(sha256: digest, inPipelines: readable) else {
                    return APIResponses.error(
                        .forbidden, code: "forbidden",
                        message: "the job token of job \(grant.jobID) may download only the artifacts of its pipeline "
                            + "\(grant.pipelineID) (and of the pipeline it promotes); no such artifact has sha256 \(digest)")
                }
                // A deploying job's download is what "this pipeline deployed these bytes" means.
                if let job = try core.store.job(id: grant.jobID), let environment = job.environment {
                    try service.store.recordDeployment(
                        StoredArtifactDeployment(
                            sha256: digest, pipelineId: job.pipelineId, jobId: job.id, stepKey: job.key, environment: environment,
                            at: Date()))
                }
            } else if try service.store.artifacts(sha256: digest, limit: 1).isEmpty {
                return APIResponses.error(.notFound, code: "not_found", message: "no artifact has sha256 \(digest)")
            }
            return try serveBlob(digest, request, service)
        }
    }

    // MARK: - Shared by the artifact and cache routes

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
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maximumUploadRequest)
        } catch {
            return .failure(
                Refusal(
                    response: APIResponses.error(
                        .contentTooLarge, code: "too_large", message: "the body exceeds \(maximumUploadRequest) bytes")))
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

    static func openSession(
        _ service: ArtifactService, kind: StoredArtifactUpload.Kind, grant: Principal.JobGrant, name: String, scope: String,
        size: UInt64, sha256: String, now: Date, context: GantryRequestContext
    ) throws -> Response {
        let row = StoredArtifactUpload(
            id: ArtifactService.newSessionID(), kind: kind, jobId: grant.jobID, attempt: Int(grant.attempt), name: name, scope: scope,
            size: Int64(size), sha256: sha256, offset: 0, createdAt: now, updatedAt: now)
        try service.blobs.createPart(row.id)
        guard let opened = try service.store.openUpload(row, maximumOpen: service.limits.maximumOpenSessionsPerJob) else {
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
        _ write: ArtifactWrite, limits: ArtifactLimits, status: HTTPResponse.Status, session: String? = nil
    ) -> Response {
        switch write {
        case .stored(let row): return APIResponses.json(bornComplete(row, session: session), status: status)
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
            message: "job \(existing.jobId) already stored `\(existing.name.logSafe(maximum: 256))` with sha256 \(existing.sha256): "
                + "an artifact is immutable, upload other bytes under another name")
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
    static func serveBlob(_ digest: String, _ request: Request, _ service: ArtifactService) throws -> Response {
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
            })
    }
}

/// `Range: bytes=N-` or `bytes=N-M` (one range; a download resumes from where it stopped).
enum ByteRange {
    static func parse(_ header: String, size: Int64) -> (Int64, Int64)? {
        guard header.hasPrefix("bytes="), header.utf8.count <= 64 else { return nil }
        let spec = header.dropFirst("bytes=".count)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let from = Int64(parts[0]), from >= 0, from < size else { return nil }
        if parts[1].isEmpty { return (from, size - 1) }
        guard let to = Int64(parts[1]), to >= from else { return nil }
        return (from, min(to, size - 1))
    }
}
