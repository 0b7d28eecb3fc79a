import GantryProtocol
import Hummingbird

/// Gives what the handlers do not answer themselves the API's one error shape
/// (`{"error": {"code", "message"}}`, `APIResponses.error`): Hummingbird's 404 for a path
/// no route serves, a known path asked with a method it does not serve (405
/// `method_not_allowed` with `Allow`, which Hummingbird would answer as a bare 404), a
/// thrown `HTTPError` (a path parameter that does not decode), and any other error a
/// handler throws (500 `internal`, without the error's text, which may name files or
/// queries). It sits outermost, so a client never has to parse a second shape.
struct APIErrorMiddleware: RouterMiddleware {
    typealias Context = GantryRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            if error.status == .notFound {
                let allowed = Self.methods(servingPath: request.uri.path)
                if !allowed.isEmpty, !allowed.contains(request.method.rawValue) {
                    var response = APIResponses.error(
                        .methodNotAllowed, code: "method_not_allowed",
                        message: "\(request.method.rawValue) is not served at this path: use \(allowed.joined(separator: ", "))")
                    response.headers[.allow] = allowed.joined(separator: ", ")
                    return response
                }
                // `Router.on` is the only way to serve an `APIRoute`: this is a route
                // declared and never registered, which the authorization test looks for.
                let message = allowed.isEmpty ? "no route serves this path" : "\(request.method.rawValue) on this path is declared but not served"
                return APIResponses.error(.notFound, code: "not_found", message: message)
            }
            var response = APIResponses.error(error.status, code: Self.code(error.status), message: error.body ?? error.status.reasonPhrase)
            for field in error.headers where field.name != .contentType && field.name != .contentLength {
                response.headers.append(field)
            }
            return response
        } catch {
            context.logger.error("an API handler failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return APIResponses.error(.internalServerError, code: "internal", message: "the coordinator failed to answer: see its log")
        }
    }

    /// The stable code of a status no handler named one for.
    static func code(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 401: return "unauthorized"
        case 403: return "forbidden"
        case 404: return "not_found"
        case 405: return "method_not_allowed"
        case 413: return "too_large"
        case 503: return "unavailable"
        case 400..<500: return "bad_request"
        default: return "internal"
        }
    }

    /// The methods of the routes whose path template matches `path` (`{x}` is one segment).
    static func methods(servingPath path: String) -> [String] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        var methods: [String] = []
        for route in APIRoute.allCases where !methods.contains(route.method) {
            let template = route.path.split(separator: "/", omittingEmptySubsequences: false)
            guard template.count == segments.count else { continue }
            if zip(template, segments).allSatisfy({ $0.hasPrefix("{") || $0 == $1 }) { methods.append(route.method) }
        }
        return methods.sorted()
    }
}
