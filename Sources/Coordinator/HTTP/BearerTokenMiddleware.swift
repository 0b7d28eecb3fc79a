import Crypto
import Foundation
import Hummingbird

/// Every API request needs `Authorization: Bearer <admin token>`: the API runs arbitrary
/// commands on build machines, so it is never open. Only `/healthz` is exempt, and it
/// reveals nothing.
public struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let tokenDigest: SHA256.Digest

    public init(token: String) {
        self.tokenDigest = SHA256.hash(data: Data(token.utf8))
    }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if request.uri.path == "/healthz" { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            return APIResponses.error(
                .unauthorized, code: "unauthorized",
                message: "missing bearer token: pass --token, set GANTRY_TOKEN, or write it to ~/.config/gantry/token")
        }
        let presented = SHA256.hash(data: Data(header.dropFirst("Bearer ".count).utf8))
        guard presented == tokenDigest else {
            return APIResponses.error(
                .unauthorized, code: "unauthorized", message: "wrong bearer token: use the one in STATE/admin.token")
        }
        return try await next(request, context)
    }
}
