import GantryProtocol

/// Which `APIRoute` a request's method and path are, for the request latency metric. A
/// label of raw paths would be unbounded (every id a new series); the route's case name
/// is one of a few dozen. Built once from `APIRoute.allCases`; a literal segment beats a
/// `{parameter}` where both match, as Hummingbird's router decides.
struct APIRouteMatcher: Sendable {
    private let routes: [(route: APIRoute, method: String, segments: [Substring?])]

    init() {
        routes = APIRoute.allCases.map { route in
            (route, route.method, route.path.split(separator: "/").map { $0.hasPrefix("{") ? nil : $0 })
        }
    }

    /// The route, or nil for a path no route serves.
    func match(method: String, path: String) -> APIRoute? {
        let path = path.split(separator: "?", maxSplits: 1).first ?? ""
        let segments = path.split(separator: "/")
        var best: (route: APIRoute, literals: Int)?
        for candidate in routes where candidate.method == method && candidate.segments.count == segments.count {
            var literals = 0
            var matches = true
            for (pattern, segment) in zip(candidate.segments, segments) {
                guard let pattern else { continue }
                guard pattern == segment else {
                    matches = false
                    break
                }
                literals += 1
            }
            if matches, literals > (best?.literals ?? -1) { best = (candidate.route, literals) }
        }
        return best?.route
    }
}
