import Foundation
import Hummingbird

/// Every API request but `/healthz` must carry `Authorization: Bearer <token>`: the API
/// runs commands on build machines, so it is never open. The token becomes the request's
/// `Principal`; each route then checks its own permission (`Router.on(_:audit:_:)`).
public struct AuthenticationMiddleware: RouterMiddleware {
    public typealias Context = GantryRequestContext
    let authenticator: Authenticator

    public init(authenticator: Authenticator) {
        self.authenticator = authenticator
    }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if request.uri.path == "/healthz" { return try await next(request, context) }
        switch authenticator.authenticate(header: request.headers[.authorization]) {
        case .failure(let failure):
            return APIResponses.error(.unauthorized, code: "unauthorized", message: failure.message)
        case .success(let principal):
            var context = context
            context.principal = principal
            return try await next(request, context)
        }
    }
}
