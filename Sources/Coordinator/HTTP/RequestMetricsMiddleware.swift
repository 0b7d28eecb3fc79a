import Hummingbird

/// Times every API request into `gantry_api_request_duration_seconds`, labelled by the
/// `APIRoute` case (never the raw path) and the status class. A streamed response (a log
/// follow, a download) is timed to its head, not to its last byte.
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = GantryRequestContext
    let metrics: CoordinatorMetrics
    let matcher = APIRouteMatcher()

    func handle(
        _ request: Request, context: GantryRequestContext, next: (Request, GantryRequestContext) async throws -> Response
    ) async throws -> Response {
        let started = ContinuousClock.now
        let route = matcher.match(method: request.method.rawValue, path: request.uri.path)?.rawValue ?? "unmatched"
        do {
            let response = try await next(request, context)
            metrics.recordRequest(route: route, status: Int(response.status.code), duration: .now - started)
            return response
        } catch {
            let status = (error as? any HTTPResponseError).map { Int($0.status.code) } ?? 500
            metrics.recordRequest(route: route, status: status, duration: .now - started)
            throw error
        }
    }
}
