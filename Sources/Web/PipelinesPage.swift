import Foundation
import GantryCoordinator
import GantryProtocol
import Hummingbird

extension Dashboard {
    /// `/ui/pipelines[?state=&branch=&repository=&cursor=]`: newest first, 50 a page. The
    /// first page refreshes its rows every 2 s (`?fragment=1` renders the rows alone);
    /// older pages stay still, so what one reads does not move.
    func pipelinesPage(_ request: Request, _ context: GantryRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        let parameters = request.uri.queryParameters
        guard let store = core.store as? any PipelineListingStore else { return notFound(context, "no pipeline listing") }
        var query: PipelineListing.Query
        switch APIRouter.pipelineQuery(parameters) {
        case .success(let parsed): query = parsed
        case .failure(let refusal):
            var page = DashboardPage.layout(context, nav: "Pipelines")
            page["heading"] = "Bad filter"
            page["message"] = refusal.text
            return DashboardPage.html(templates.render(page, "error"), status: .badRequest)
        }
        query.limit = PipelineListing.defaultLimit
        await core.flush()
        let list = try PipelineListing.list(query, store: store)
        let rows = list.pipelines.map(Self.row)
        let filtered = query.states != nil || query.branch != nil || query.repository != nil
        if parameters.get("fragment") == "1" {
            return DashboardPage.html(templates.render(["pipelines": rows, "filtered": filtered], "pipeline-rows"))
        }
        let filters = Self.filterQuery(query)
        var page = DashboardPage.layout(context, nav: "Pipelines")
        page["pipelines"] = rows
        page["filtered"] = filtered
        page["states"] = PipelineState.allCases.map { state in
            ["name": state.rawValue, "selected": query.states?.contains(state) == true] as [String: Any]
        }
        page["branch"] = query.branch ?? ""
        page["repository"] = query.repository ?? ""
        if query.after == nil {
            page["live"] = true
            page["liveURL"] = "/ui/pipelines?" + (filters.isEmpty ? "" : filters + "&") + "fragment=1"
        } else {
            page["cursor"] = true
            page["firstURL"] = "/ui/pipelines" + (filters.isEmpty ? "" : "?" + filters)
        }
        if let next = list.nextCursor {
            page["nextURL"] = "/ui/pipelines?" + (filters.isEmpty ? "" : filters + "&") + "cursor=" + next
        }
        return DashboardPage.html(templates.render(page, "pipelines"), since: start)
    }

    static func filterQuery(_ query: PipelineListing.Query) -> String {
        var parts: [String] = []
        if let states = query.states, !states.isEmpty {
            parts.append("state=" + states.map(\.rawValue).sorted().joined(separator: ","))
        }
        if let branch = query.branch { parts.append("branch=" + SignInRoutes.encodeQueryValue(branch)) }
        if let repository = query.repository { parts.append("repository=" + SignInRoutes.encodeQueryValue(repository)) }
        return parts.joined(separator: "&")
    }

    static func row(_ pipeline: API.PipelineSummary) -> [String: Any] {
        let order = ["running", "leased", "queued", "waiting", "blocked", "failed", "timed_out", "cancelled", "succeeded", "skipped"]
        let counts = pipeline.jobCounts.sorted { (order.firstIndex(of: $0.key) ?? 99) < (order.firstIndex(of: $1.key) ?? 99) }
            .map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        var row: [String: Any] = [
            "id": pipeline.id, "state": pipeline.state, "repository": pipeline.repository, "branch": pipeline.branch,
            "commit": pipeline.commit, "shortCommit": String(pipeline.commit.prefix(12)), "counts": counts,
            "createdAt": DashboardPage.time(pipeline.createdAt),
            "duration": DashboardPage.duration(
                pipeline.startedAt.map { (pipeline.finishedAt ?? Date()).timeIntervalSince($0) }),
        ]
        if let tag = pipeline.tag { row["tag"] = tag }
        if let message = pipeline.message { row["message"] = String(message.prefix(200)) }
        return row
    }
}
