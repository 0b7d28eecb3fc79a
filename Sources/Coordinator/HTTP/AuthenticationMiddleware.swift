import Foundation
import HTTPTypes
import Hummingbird

/// Every API request but `/healthz` and webhooks must carry `Authorization: Bearer
/// <token>`: the API runs commands on build machines, so it is never open. The token
/// becomes the request's `Principal`; each route then checks its own permission
/// (`Router.on(_:audit:_:)`). A job token (`gjt_…`, held by a running step) is checked by
/// `JobTokenAuthenticator`. A webhook (`/v1/hooks/…`) carries no token: git servers
/// sign it with the project's secret, which its handler checks before anything else
/// (`WebhookRoutes`).
public struct AuthenticationMiddleware: RouterMiddleware {
    public typealias Context = GantryRequestContext
    let authenticator: Authenticator
    let jobTokens: JobTokenAuthenticator?
    /// The dashboard's sessions: a request without `Authorization` may carry one's cookie.
    let sessions: WebSessions?

    public init(authenticator: Authenticator, jobTokens: JobTokenAuthenticator? = nil, sessions: WebSessions? = nil) {
        self.authenticator = authenticator
        self.jobTokens = jobTokens
        self.sessions = sessions
    }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if request.uri.path == "/healthz" || Self.isWebhook(request.uri.path) || Self.isDashboard(request.uri.path) {
            return try await next(request, context)
        }
        var header = request.headers[.authorization]
        if header == nil, let sessions,
            let id = WebSessions.cookie(sessions.cookieName, in: request.headers[.cookie])
        {
            // The dashboard's scripts call the API with the session cookie. A request that
            // changes anything must also echo the session's CSRF token in a header, which
            // a page of another origin can neither read nor set.
            guard let session = sessions.session(id: id) else {
                return APIResponses.error(.unauthorized, code: "unauthorized", message: "the session ended: sign in again")
            }
            if ![.get, .head].contains(request.method),
                !WebSessions.matches(request.headers[HTTPField.Name(WebSessions.csrfHeader)!], session.csrf)
                    || !WebSessions.isSameOrigin(
                        secFetchSite: request.headers[HTTPField.Name("Sec-Fetch-Site")!], origin: request.headers[.origin],
                        host: request.head.authority)
            {
                return APIResponses.error(
                    .forbidden, code: "csrf", message: "a request with a session cookie must carry its \(WebSessions.csrfHeader) header")
            }
            header = "Bearer " + session.token
        }
        if let jobTokens, let header, header.hasPrefix("Bearer ") {
            let text = Substring(header.dropFirst("Bearer ".count).trimmingCharacters(in: .whitespaces))
            if JobToken.isJobToken(text) {
                switch await jobTokens.authenticate(text) {
                case .failure(let refusal):
                    return APIResponses.error(.unauthorized, code: "unauthorized", message: refusal.message)
                case .success(let principal):
                    var context = context
                    context.principal = principal
                    return try await next(request, context)
                }
            }
        }
        switch authenticator.authenticate(header: header) {
        case .failure(let failure):
            return APIResponses.error(.unauthorized, code: "unauthorized", message: failure.message)
        case .success(let principal):
            var context = context
            context.principal = principal
            return try await next(request, context)
        }
    }

    /// The dashboard's pages (`/` and `/ui/...`): their own middleware signs the browser
    /// in with a session cookie, and sends it to the sign-in page without one.
    static func isDashboard(_ path: String) -> Bool {
        path == "/" || path == "/ui" || path.hasPrefix("/ui/") || path == "/favicon.ico"
    }

    /// `/v1/hooks/NAME`: exactly one segment after the prefix.
    static func isWebhook(_ path: String) -> Bool {
        let prefix = "/v1/hooks/"
        guard path.hasPrefix(prefix) else { return false }
        let rest = path.dropFirst(prefix.count)
        return !rest.isEmpty && !rest.contains("/")
    }
}
