import Foundation
import GantryProtocol
import Hummingbird
import NIOFoundationCompat

extension APIRouter {
    /// The longest key listing one call returns (and the default): every key a pipeline
    /// may hold (`MetaDataRule.maximumKeysPerPipeline`).
    static let maximumMetaDataListing = MetaDataRule.maximumKeysPerPipeline

    /// `PUT /v1/pipelines/{id}/meta-data/{key}` (body `API.SetMetaData`),
    /// `GET /v1/pipelines/{id}/meta-data/{key}`, `GET /v1/pipelines/{id}/meta-data[?limit=N]`.
    /// Callable by a step's job token for its own pipeline (`APIRoute.jobTokenAllowed`),
    /// or by an API token with `submit` (set) or `read` (get, list). A set is audited with
    /// the key, never the value.
    static func addMetaDataRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let audit = dependencies.audit
        let core = dependencies.core
        let store = dependencies.metaData ?? (core.store as? any MetaDataStore)

        router.on(.setMetaData, audit: audit) { request, context -> Response in
            let (pipelineID, key) = try (context.parameter("id"), context.parameter("key"))
            context.audit.add("key", key.logSafe(maximum: MetaDataRule.maximumKeyBytes))
            if let problem = MetaDataRule.keyProblem(key) {
                return APIResponses.error(.unprocessableContent, code: "invalid_meta_data", message: problem)
            }
            guard let store else { return unavailable() }
            var request = request
            let buffer: ByteBuffer
            do {
                buffer = try await request.collectBody(upTo: MetaDataRule.maximumBody)
            } catch {
                return APIResponses.error(
                    .contentTooLarge, code: "too_large",
                    message: "the body exceeds \(MetaDataRule.maximumBody) bytes; values are at most 64 KiB")
            }
            // The decoder's message is not returned: it could quote part of the value.
            guard let body = try? API.decoder.decode(API.SetMetaData.self, from: Data(buffer: buffer)) else {
                return APIResponses.error(.badRequest, code: "bad_request", message: "the body must be {\"value\": \"...\"}")
            }
            if let problem = MetaDataRule.valueProblem(body.value) {
                let status: HTTPResponse.Status = body.value.utf8.count > MetaDataRule.maximumValueBytes ? .contentTooLarge : .unprocessableContent
                return APIResponses.error(status, code: "invalid_meta_data", message: problem)
            }
            guard try core.store.pipeline(id: pipelineID) != nil else { return noPipeline(pipelineID) }
            // A person writing into a pipeline that deploys steers what its deploy steps
            // read (`$(gantry meta-data get image)`): that needs deploy for each of its
            // environments, as submitting the pipeline did. A job token is the pipeline's
            // own step writing, which its author arranged.
            if let principal = context.principal, principal.job == nil {
                let environments = Set(try core.store.jobs(pipelineID: pipelineID).compactMap(\.environment))
                if let refused = environments.sorted().first(where: { !principal.mayDeploy(to: $0) }) {
                    context.audit.add("reason", "deploy not permitted")
                    return APIResponses.error(
                        .forbidden, code: "forbidden",
                        message: "\(principal.identity) may not set meta-data of pipeline \(pipelineID): it deploys to \(refused), "
                            + "and what its steps read steers that deploy, which needs the deploy permission for it")
                }
            }
            let row = StoredMetaData(
                pipelineId: pipelineID, key: key, value: body.value, jobId: context.principal?.job?.jobID, updatedAt: Date())
            let write = try store.setMetaData(row, maximumKeys: MetaDataRule.maximumKeysPerPipeline)
            if write == .full {
                return APIResponses.error(
                    .contentTooLarge, code: "too_many_keys",
                    message: "pipeline \(pipelineID) already holds \(MetaDataRule.maximumKeysPerPipeline) meta-data keys, "
                        + "the most one pipeline may hold: overwrite an existing key instead")
            }
            context.audit.add("created", write == .created ? "true" : "false")
            return APIResponses.json(view(row, created: write == .created), status: write == .created ? .created : .ok)
        }

        router.on(.getMetaData, audit: audit) { _, context -> Response in
            let (pipelineID, key) = try (context.parameter("id"), context.parameter("key"))
            if let problem = MetaDataRule.keyProblem(key) {
                return APIResponses.error(.unprocessableContent, code: "invalid_meta_data", message: problem)
            }
            guard let store else { return unavailable() }
            if let row = try store.metaData(pipelineID: pipelineID, key: key) { return APIResponses.json(view(row)) }
            guard try core.store.pipeline(id: pipelineID) != nil else { return noPipeline(pipelineID) }
            // Its own code, so `gantry meta-data get --default` tells it from an unknown pipeline.
            return APIResponses.error(
                .notFound, code: "not_set",
                message: "meta-data key '\(key)' is not set for pipeline \(pipelineID.logSafe(maximum: 128)): set it in an earlier step with "
                    + "`gantry meta-data set \(key) VALUE` (and make this step depend on that one), or pass --default")
        }

        router.on(.listMetaData, audit: audit) { request, context -> Response in
            let pipelineID = try context.parameter("id")
            guard let store else { return unavailable() }
            guard try core.store.pipeline(id: pipelineID) != nil else { return noPipeline(pipelineID) }
            // Refused, not clamped, like every listing's limit (`truncated` says more exist).
            var limit = maximumMetaDataListing
            if let text = request.uri.queryParameters.get("limit") {
                guard let asked = Int(text), (1...maximumMetaDataListing).contains(asked) else {
                    return APIResponses.error(.badRequest, code: "bad_request", message: "?limit= is 1 to \(maximumMetaDataListing)")
                }
                limit = asked
            }
            let keys = try store.metaDataKeys(pipelineID: pipelineID, limit: limit + 1)
            return APIResponses.json(
                API.MetaDataKeys(pipelineId: pipelineID, keys: Array(keys.prefix(limit)), truncated: keys.count > limit))
        }
    }

    private static func view(_ row: StoredMetaData, created: Bool? = nil) -> API.MetaData {
        API.MetaData(
            pipelineId: row.pipelineId, key: row.key, value: row.value, jobId: row.jobId, updatedAt: row.updatedAt,
            created: created)
    }

    private static func noPipeline(_ id: String) -> Response {
        APIResponses.error(.notFound, code: "not_found", message: "no pipeline \(id.logSafe(maximum: 128))")
    }

    private static func unavailable() -> Response {
        APIResponses.error(
            .serviceUnavailable, code: "unavailable", message: "this coordinator's store does not keep pipeline meta-data")
    }
}
