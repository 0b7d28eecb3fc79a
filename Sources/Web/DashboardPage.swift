import Foundation
import GantryCoordinator
import HTTPTypes
import Hummingbird
import NIOCore

/// How every dashboard page answers: HTML with headers that keep it in its own origin
/// (no framing, no inline or foreign scripts, no sniffing, no referrer leaking ids).
enum DashboardPage {
    static let securityHeaders: HTTPFields = [
        .contentType: "text/html; charset=utf-8",
        .cacheControl: "no-store",
        HTTPField.Name("Content-Security-Policy")!:
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            + "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        HTTPField.Name("Referrer-Policy")!: "same-origin",
    ]

    static func html(
        _ text: String, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:], since start: ContinuousClock.Instant? = nil
    ) -> Response {
        var headers = securityHeaders
        headers.append(contentsOf: extra)
        if let start {
            // The server's own time for the page (reads and rendering), which the
            // benchmark reads and browsers' developer tools show.
            let elapsed = ContinuousClock.now - start
            let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            headers[HTTPField.Name("Server-Timing")!] = "render;dur=\(String(format: "%.2f", milliseconds))"
        }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func redirect(_ location: String, headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.location: location, .cacheControl: "no-store"]
        headers.append(contentsOf: extra)
        return Response(status: .seeOther, headers: headers)
    }

    /// The fields every page's layout reads.
    static func layout(_ context: GantryRequestContext, nav: String) -> [String: Any] {
        [
            "user": context.principal?.identity ?? "", "csrf": context.csrf ?? "",
            "nav" + nav: true, "page": nav.lowercased(),
        ]
    }

    /// "3 s", "4 min 10 s", "2 h 5 min": a duration as people read it.
    static func duration(_ seconds: TimeInterval?) -> String {
        // A stored date can be anything; a value past `Int`'s range would trap.
        guard let seconds, seconds.isFinite, seconds >= 0, seconds < 1e12 else { return "" }
        let whole = Int(seconds.rounded())
        if whole < 60 { return "\(whole) s" }
        if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
        return "\(whole / 3600) h \(whole % 3600 / 60) min"
    }

    /// RFC 3339, which the pages' script turns into "3 s ago".
    static func time(_ date: Date?) -> String {
        date.map { $0.ISO8601Format() } ?? ""
    }
}
