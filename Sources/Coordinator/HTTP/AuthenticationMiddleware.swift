import Foundation
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

    public init(authenticator: Authenticator, jobTokens: JobTokenAuthenticator? = nil) {
        self.authenticator = authenticator
        self.jobTokens = jobTokens
    }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if request.uri.path == "/healthz" || Self.isWebhook(request.uri.path) { return try await next(request, context) }
        let header = request.headers[.authorization]
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

    /// `/v1/hooks/NAME`: exactly one segment after the prefix.
    static func isWebhook(_ path: String) -> Bool {
        let prefix = "/v1/hooks/"
        guard path.hasPrefix(prefix) else { return false }
        let rest = path.dropFirst(prefix.count)
        return !rest.isEmpty && !rest.contains("/")
    }
}
