import GantryProtocol
import Hummingbird

extension APIRouter {
    /// `GET /v1/jobs[?state=a,b&limit=N&cursor=C]`: newest first, `limit` 1-5,000 (default
    /// 200; out of range is 400, not clamped, so a client never mistakes a short page for
    /// the end). The body stays a JSON array, as clients already decode it; the next
    /// page's address is an RFC 8288 `Link: <…>; rel="next"` header (`PageLink`).
    static func addJobListRoute(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let core = dependencies.core
        let store = core.store as? any JobListingStore
        router.on(.listJobs, audit: dependencies.audit) { request, _ -> Response in
            let query = request.uri.queryParameters
            let stateText = query.get("state")
            let names = stateText?.split(separator: ",").map(String.init)
            if let unknown = names?.first(where: { JobState(rawValue: $0) == nil }) {
                return APIResponses.error(
                    .badRequest, code: "bad_request",
                    message: "unknown state '\(unknown.logSafe(maximum: 40))': use \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let states = names?.compactMap(JobState.init(rawValue:))
            var limit = JobListing.defaultLimit
            if let text = query.get("limit") {
                guard let value = Int(text), (1...JobListing.maximumLimit).contains(value) else {
                    return APIResponses.error(.badRequest, code: "bad_request", message: "?limit= is 1 to \(JobListing.maximumLimit)")
                }
                limit = value
            }
            var before: JobListing.Cursor?
            if let text = query.get("cursor"), !text.isEmpty {
                guard let cursor = JobListing.Cursor(text: text) else {
                    return APIResponses.error(.badRequest, code: "bad_request", message: "?cursor= is not a cursor this API handed out")
                }
                before = cursor
            }
            guard let store else {
                // A store that cannot page answers the first page only.
                return APIResponses.json(try await core.listJobs(states: states, limit: limit))
            }
            await core.flush()
            // One more than asked tells whether another page exists.
            let rows = try store.jobPage(states: states, before: before, limit: limit + 1)
            let page = rows.prefix(limit)
            var response = APIResponses.json(page.map { CoordinatorCore.view($0.job) })
            if rows.count > limit, let last = page.last {
                var parameters: [(String, String)] = []
                if let stateText { parameters.append(("state", stateText)) }
                parameters += [("limit", String(limit)), ("cursor", last.cursor.text)]
                response.headers[PageLink.header] = PageLink.next(APIRoute.listJobs.path, parameters)
            }
            return response
        }
    }
}
