import GantryProtocol
import Hummingbird

extension APIRouter {
    /// `GET /v1/pipelines[?state=a,b&branch=&repository=&limit=&cursor=]`: newest first,
    /// `limit` 1-200 (default 50); `nextCursor` continues.
    static func addPipelineListRoute(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let core = dependencies.core
        let store = core.store as? any PipelineListingStore
        router.on(.listPipelines, audit: dependencies.audit) { request, _ -> Response in
            guard let store else {
                return APIResponses.error(.serviceUnavailable, code: "unavailable", message: "this coordinator's store lists no pipelines")
            }
            switch pipelineQuery(request.uri.queryParameters) {
            case .failure(let message):
                return APIResponses.error(.badRequest, code: "bad_request", message: message.text)
            case .success(let query):
                await core.flush()
                return APIResponses.json(try PipelineListing.list(query, store: store))
            }
        }
    }

    public struct QueryRefusal: Error {
        public var text: String
    }

    /// The listing's query, each value checked: a bad one fails the request with a
    /// message naming it.
    public static func pipelineQuery(_ parameters: Hummingbird.Parameters) -> Result<PipelineListing.Query, QueryRefusal> {
        var query = PipelineListing.Query()
        if let text = parameters.get("state"), !text.isEmpty {
            var states = Set<PipelineState>()
            for name in text.split(separator: ",").prefix(8) {
                guard let state = PipelineState(rawValue: String(name)) else {
                    return .failure(
                        QueryRefusal(
                            text: "unknown state '\(String(name).logSafe(maximum: 40))': use "
                                + PipelineState.allCases.map(\.rawValue).joined(separator: ", ")))
                }
                states.insert(state)
            }
            query.states = states
        }
        for (name, maximum) in [("branch", 1024), ("repository", 4096)] {
            guard let value = parameters.get(name), !value.isEmpty else { continue }
            guard value.utf8.count <= maximum else { return .failure(QueryRefusal(text: "?\(name)= is at most \(maximum) bytes")) }
            if name == "branch" { query.branch = value } else { query.repository = value }
        }
        if let text = parameters.get("limit") {
            guard let limit = Int(text), (1...PipelineListing.maximumLimit).contains(limit) else {
                return .failure(QueryRefusal(text: "?limit= is 1 to \(PipelineListing.maximumLimit)"))
            }
            query.limit = limit
        }
        if let text = parameters.get("cursor"), !text.isEmpty {
            guard let position = PipelineListing.Position(cursor: text) else {
                return .failure(QueryRefusal(text: "?cursor= is not a cursor this API handed out"))
            }
            query.after = position
        }
        return .success(query)
    }
}
