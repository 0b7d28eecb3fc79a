import Foundation
import GantryCoordinator
import GantryProtocol
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /ui/login` shows the form; `POST /ui/login` trades an API token for a session;
/// `POST /ui/logout` ends it. The form carries a one-time value also set in a short-lived
/// cookie (double submit), so another site cannot sign a browser in to an account of its
/// choosing; every sign-in, good or bad, is audited as `session.sign_in`.
enum SignInRoutes {
    static let maximumFormSize = 8192

    static func add(to router: Router<GantryRequestContext>, _ dashboard: Dashboard) {
        router.get("/ui/login") { request, _ -> Response in
            let next = safeNext(request.uri.queryParameters.get("next"))
            return form(dashboard, next: next, error: nil)
        }

        router.post("/ui/login") { request, context -> Response in
            guard sameOrigin(request) else {
                return form(dashboard, next: "/ui/pipelines", error: "Sign in from this site's own page.", status: .forbidden)
            }
            guard dashboard.signInLimit.admit(context.remoteAddress?.ipAddress ?? "-") else {
                return form(dashboard, next: "/ui/pipelines", error: "Too many sign-ins from this address: wait a minute.", status: .tooManyRequests)
            }
            let fields: [String: String]
            do {
                fields = try await formFields(request)
            } catch {
                return form(dashboard, next: "/ui/pipelines", error: "The form was too large or malformed.", status: .badRequest)
            }
            let next = safeNext(fields["next"])
            guard let expected = WebSessions.cookie(dashboard.loginCookie, in: request.headers[.cookie]),
                WebSessions.matches(fields["csrf"], expected)
            else {
                return form(dashboard, next: next, error: "The sign-in form expired: try again.", status: .forbidden)
            }
            let token = (fields["token"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            let address = context.remoteAddress?.ipAddress
            if JobToken.isJobToken(Substring(token)) {
                return form(dashboard, next: next, error: "A job token cannot sign in.", status: .unauthorized)
            }
            switch dashboard.authenticator.authenticate(header: "Bearer " + token) {
            case .failure(let failure):
                dashboard.audit.record(
                    AuditEvent(
                        actor: "anonymous", tokenID: nil, address: address, action: "session.sign_in", object: "dashboard",
                        outcome: "denied", detail: ["reason": failure.message]))
                return form(dashboard, next: next, error: "Sign-in refused: \(failure.message)", status: .unauthorized)
            case .success(let principal):
                let (id, _) = dashboard.sessions.create(token: token)
                dashboard.audit.record(
                    AuditEvent(
                        actor: principal.identity, tokenID: principal.tokenID, address: address, action: "session.sign_in",
                        object: "dashboard", outcome: "succeeded"))
                var headers = HTTPFields()
                headers.append(HTTPField(name: .setCookie, value: dashboard.cookie(dashboard.sessions.cookieName, id)))
                headers.append(
                    HTTPField(name: .setCookie, value: dashboard.cookie(dashboard.loginCookie, "", maxAge: 0, path: dashboard.loginCookiePath)))
                return DashboardPage.redirect(next, headers: headers)
            }
        }

        router.post("/ui/logout") { request, _ -> Response in
            let fields = (try? await formFields(request)) ?? [:]
            // Only the session's own page signs it out: a post from another site (which
            // carries no SameSite=Strict cookie) or without the session's CSRF value
            // changes nothing, not even the cookie.
            guard sameOrigin(request), let id = WebSessions.cookie(dashboard.sessions.cookieName, in: request.headers[.cookie]),
                let session = dashboard.sessions.session(id: id), WebSessions.matches(fields["csrf"], session.csrf)
            else { return DashboardPage.redirect("/ui/pipelines") }
            dashboard.sessions.remove(id: id)
            return DashboardPage.redirect(
                "/ui/login", headers: [.setCookie: dashboard.cookie(dashboard.sessions.cookieName, "", maxAge: 0)])
        }
    }

    static func form(
        _ dashboard: Dashboard, next: String, error: String?, status: HTTPResponse.Status = .ok
    ) -> Response {
        let csrf = WebSessions.randomText()
        var context: [String: Any] = ["csrf": csrf, "next": next]
        if let error { context["error"] = error }
        return DashboardPage.html(
            dashboard.templates.render(context, "login"), status: status,
            headers: [.setCookie: dashboard.cookie(dashboard.loginCookie, csrf, maxAge: 1800, path: dashboard.loginCookiePath)])
    }

    static func sameOrigin(_ request: Request) -> Bool {
        WebSessions.isSameOrigin(
            secFetchSite: request.headers[HTTPField.Name("Sec-Fetch-Site")!], origin: request.headers[.origin],
            host: request.head.authority)
    }

    /// Where to go after signing in: a dashboard path only (never another host, and
    /// never `//host`, which browsers read as one).
    static func safeNext(_ given: String?) -> String {
        guard let given, given.hasPrefix("/ui/"), !given.hasPrefix("//"), given.utf8.count <= 2048,
            !given.contains("\\"), given.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else { return "/ui/pipelines" }
        return given
    }

    /// `application/x-www-form-urlencoded` fields of a bounded body.
    static func formFields(_ request: Request) async throws -> [String: String] {
        let body = try await request.body.collect(upTo: maximumFormSize)
        let text = String(buffer: body)
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&").prefix(16) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]) else { continue }
            fields[name] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    private static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    static func encodeQueryValue(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "/ui/pipelines"
    }
}
