import GantryCoordinator
import GantryProtocol
import HTTPTypes
import Hummingbird

/// Signs a dashboard page's request in from its session cookie: the session's API token
/// is authenticated again on every request (a revoked token or disabled identity ends
/// the session's use at once), and the page needs the `read` permission. Without a
/// session the browser goes to the sign-in page, which brings it back afterwards.
struct DashboardSessionMiddleware: RouterMiddleware {
    typealias Context = GantryRequestContext
    let sessions: WebSessions
    let authenticator: Authenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let id = WebSessions.cookie(sessions.cookieName, in: request.headers[.cookie]),
            let session = sessions.session(id: id)
        else { return signIn(request) }
        switch authenticator.authenticate(header: "Bearer " + session.token) {
        case .failure:
            sessions.remove(id: id)
            return signIn(request)
        case .success(let principal):
            guard principal.allows(.read) else {
                return DashboardPage.html(
                    "<!doctype html><title>Forbidden</title><p>\(principal.identity.htmlEscaped) holds no role that may read.</p>",
                    status: .forbidden)
            }
            var context = context
            context.principal = principal
            context.csrf = session.csrf
            return try await next(request, context)
        }
    }

    private func signIn(_ request: Request) -> Response {
        // A page's own fragment refresh gets 401, so its script reloads to the sign-in page
        // instead of pasting it into the page.
        if request.headers[HTTPField.Name("X-Gantry-Fragment")!] != nil {
            return Response(status: .unauthorized)
        }
        let target = request.method == .get ? request.uri.description : "/ui/pipelines"
        return DashboardPage.redirect("/ui/login?next=" + SignInRoutes.encodeQueryValue(target))
    }
}

extension String {
    /// The text escaped for HTML, by Unicode scalar (`ScalarHTMLContentType`).
    var htmlEscaped: String { ScalarHTMLContentType.escape(self) }
}
