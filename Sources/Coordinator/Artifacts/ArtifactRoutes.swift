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
/// - `GET /v1/artifact-uploads/{id}`: the session and its offset, to the owning
///   attempt's job token (and admins) only.
/// - `PATCH /v1/artifact-uploads/{id}` (job token, `Upload-Offset: N`): the body is
///   streamed into the part file as it arrives; 409 with the session when N is not its
///   offset (or another request is writing it); 413 past the declared size.
/// - `POST /v1/artifact-uploads/{id}/complete` (job token): verifies size and sha256 by
///   reading the part file, stores the blob once and records the artifact.
/// - `GET /v1/pipelines/{id}/artifacts[?step=KEY]` (`resolvedArtifacts`: for a promoted
///   pipeline, a step key of the source resolves to the source's artifacts only),
///   `GET /v1/artifacts/{digest}` (with each deployment's job state now),
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
        let identities = dependencies.identities

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
            await service.sweepOffPool(now: now)
            guard let provenance = try provenance(of: grant, core: core) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no job \(grant.jobID)")
            }
            context.audit.set(object: "job:\(grant.jobID)")
            // Immutable per attempt: this attempt's own name answers at once; an earlier
            // attempt's is replaced when this one's bytes are stored (a retry rebuilds).
            if let existing = try service.store.artifact(jobID: grant.jobID, name: body.name),
                existing.attempt >= Int(grant.attempt)
            {
                if existing.attempt == Int(grant.attempt), existing.sha256 == body.sha256 {
                    return APIResponses.json(bornComplete(existing), status: .ok)
                }
                return artifactExists(existing)
            }
            let row = StoredArtifact(
                sha256: body.sha256, name: body.name, size: Int64(body.size), pipelineId: provenance.pipelineID,
                stepKey: provenance.stepKey, jobId: grant.jobID, attempt: Int(grant.attempt), commit: provenance.commit,
                agentId: provenance.agentID, createdAt: now)
            // Bytes already held, and already readable by this job: nothing to send, the name
            // is recorded at once. Bytes held for someone else must be sent (and are then
            // stored once): knowing a digest is no proof of holding its bytes, and a
            // shortcut would let a job name, and then download, another pipeline's artifact.
            let readable = try readablePipelines(grant, core: core)
            // The lock is held across SQLite calls: on NIO's thread pool, never parking
            // the cooperative threads the coordinator's actor needs.
            let held = try await service.withBlobHeld { () throws -> ArtifactWrite? in
                guard service.blobs.hasBlob(body.sha256),
                    try service.store.artifactExists(sha256: body.sha256, size: Int64(body.size), inPipelines: readable)
                else { return nil }
                return try service.store.storeArtifact(row, maximumPerJob: service.limits.maximumArtifactsPerJob)
            }
            if let held {
                context.audit.add("stored", "existing blob")
                return await artifactWriteResponse(held, service: service, status: .created)
            }
            return try await openSession(
                service, kind: .artifact, grant: grant, name: body.name, scope: "", size: body.size, sha256: body.sha256, now: now,
                context: context)
        }

        router.on(.getArtifactUpload, audit: audit) { _, context -> Response in
            guard let service else { return artifactsUnavailable() }
            let id = try context.parameter("id")
            // The owning attempt's job token, or an admin: a session id (and its name and
            // digest) is nothing a reader of the pipeline needs, and knowing one is the
            // first half of writing into it.
            guard context.principal?.job != nil || context.principal?.bindings.contains(where: { $0.role == .admin }) == true
            else {
                context.audit.add("reason", "not the session's job")
                return APIResponses.error(
                    .forbidden, code: "forbidden",
                    message: "an upload session is shown only to the job token of the attempt that opened it, and to admins: "
                        + "the read permission does not show it")
            }
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
            // The bytes are hashed as they are written (`PartDigests`), continuing the
            // state of the session's earlier PATCHes when it covers exactly what is stored.
            let writer = try await service.blobs.openPart(
                id, at: session.offset, digest: service.partDigests.take(id, coveringBytes: session.offset))
            var tooLarge = false
            var failure: (any Error)?
            var batch = PartBatch()
            do {
                for try await buffer in request.body {
                    guard writer.offset + Int64(batch.bytes + buffer.readableBytes) <= session.size else {
                        tooLarge = true
                        break
                    }
                    if batch.append(buffer) { try await writer.write(batch.take()) }
                }
            } catch {
                // A dropped connection: keep what arrived, so the sender resumes from it.
                failure = error
            }
            if !batch.isEmpty {
                do {
                    try await writer.write(batch.take())
                } catch {
                    failure = failure ?? error
                }
            }
            // Only synced bytes are recorded: a failed sync keeps the session where it was.
            let syncFailure = await writer.finish()
            let stored = syncFailure == nil ? writer.offset : session.offset
            if let syncFailure { failure = syncFailure }
            let recorded = try service.store.moveUpload(id: id, offset: stored, at: Date())
            // Kept only once its bytes are synced and recorded: it then covers exactly them.
            // A session dropped meanwhile has no row left to complete, so nothing is kept
            // for it (the entry would only hold one of the bounded places).
            if recorded, syncFailure == nil, let digest = writer.digest { service.partDigests.keep(id, digest) }
            if let failure {
                if let full = DiskFull.response(failure, storedUpTo: stored) {
                    service.logger.error("an artifact upload failed: the disk is full", metadata: ["session": "\(id)"])
                    return full
                }
                throw failure
            }
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
            if session.kind == .cache, let job = try core.store.job(id: session.jobId),
                let pipeline = try core.store.pipeline(id: job.pipelineId),
                let refusal = try protectedScopeRefusal(session.scope, pipeline: pipeline, service: service, identities: identities)
            {
                try service.store.deleteUpload(id: id)
                service.blobs.removePart(id)
                return refusal
            }
            let (digest, size) = try await partDigest(id, size: session.size, service)
            guard digest == session.sha256, size == session.size else {
                // Its bytes are not what it declared: nothing of it can be kept.
                try service.store.deleteUpload(id: id)
                service.blobs.removePart(id)
                return APIResponses.error(
                    .unprocessableContent, code: "digest_mismatch",
                    message: "the uploaded bytes (\(size) bytes, sha256 \(digest)) are not the declared \(session.size) bytes with "
                        + "sha256 \(session.sha256): the session is discarded, open a new one")
            }
            do {
                try await service.blobs.place(part: id, as: digest)
            } catch {
                if let full = DiskFull.response(error) { return full }
                throw error
            }
            core.metrics.recordArtifactBytes(stored: Int(size), kind: session.kind == .cache ? "cache" : "artifact")
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
                let write: ArtifactWrite
                do {
                    write = try await service.offPool {
                        try service.store.storeArtifact(row, maximumPerJob: service.limits.maximumArtifactsPerJob)
                    }
                } catch {
                    // The blob is placed but unnamed (this session's part became it): the
                    // agent's retry opens a new session, sends the bytes again, and its
                    // completion reuses the blob and names it once there is room.
                    if let full = DiskFull.response(error) { return full }
                    throw error
                }
                response = await artifactWriteResponse(write, service: service, status: .ok, session: id)
            case .cache:
                let now = Date()
                let saved: (StoredCacheEntry, orphans: [String])
                do {
                    saved = try await service.offPool {
                        try service.store.saveCache(
                            StoredCacheEntry(
                                scope: session.scope, key: session.name, sha256: digest, size: size, createdAt: now, lastUsedAt: now),
                            scopeLimit: service.limits.cacheScopeBytes)
                    }
                } catch {
                    if let full = DiskFull.response(error) { return full }
                    throw error
                }
                let (entry, orphans) = saved
                await service.deleteOrphans(orphans)
                response = APIResponses.json(
                    API.ArtifactUpload(id: id, offset: UInt64(size), size: UInt64(size), sha256: digest, cache: view(entry)))
            }
            try service.store.deleteUpload(id: id)
            // A blob no row took (a conflict, a full job) is not kept either.
            await service.deleteOrphans([digest])
            return response
        }

        router.on(.listArtifacts, audit: audit) { request, context -> Response in
            guard let service else { return artifactsUnavailable() }
            let id = try context.parameter("id")
            guard let pipeline = try core.store.pipeline(id: id) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no pipeline \(id.logSafe(maximum: 128))")
            }
            let step = request.uri.queryParameters.get("step")
            let rows = try resolvedArtifacts(of: pipeline, step: step, service: service, core: core)
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
                guard try service.store.artifactExists(sha256: digest, size: nil, inPipelines: readablePipelines(grant, core: core))
                else {
                    return APIResponses.error(
                        .forbidden, code: "forbidden",
                        message: "the job token of job \(grant.jobID) may download only the artifacts of its pipeline "
                            + "\(grant.pipelineID) (and of the pipeline it promotes); no such artifact has sha256 \(digest)")
                }
                // A deploying job's download of what its pipeline resolves through its
                // `download:` rules or its promotion is what "this pipeline deployed these
                // bytes" means; another readable digest (a log, a report) is not deployed.
                if let job = try core.store.job(id: grant.jobID), let environment = job.environment,
                    try deploys(digest, job: job, service: service, core: core)
                {
                    try service.store.recordDeployment(
                        StoredArtifactDeployment(
                            sha256: digest, pipelineId: job.pipelineId, jobId: job.id, stepKey: job.key, environment: environment,
                            at: Date()))
                }
            } else if try service.store.artifacts(sha256: digest, limit: 1).isEmpty {
                return APIResponses.error(.notFound, code: "not_found", message: "no artifact has sha256 \(digest)")
            }
            return try serveBlob(digest, request, service, metrics: core.metrics, kind: "artifact")
        }
    }
}
