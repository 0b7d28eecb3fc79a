import Foundation
import GantryCoordinator
import GantryProtocol
import Hummingbird
import NIOCore

/// The web dashboard, served by the coordinator on its API's port under `/ui/`: pages
/// rendered on the server from Mustache templates, kept live by small scripts that call
/// the JSON API with the session cookie (and the session's CSRF token for every change),
/// so an action in the browser passes the same permission checks and audit as the CLI.
///
/// Pages: pipelines (filtered, paged, live), a pipeline (its steps as a graph, live, with
/// cancel/retry/approve/reject), a job's log (a live tail over server-sent events that
/// resumes at the byte it stopped), agents and the queue, deployments with delivery
/// metrics, and the audit log.
public struct Dashboard: Sendable {
    let core: CoordinatorCore
    let authenticator: Authenticator
    let audit: AuditLog
    let sessions: WebSessions
    let templates: DashboardTemplates
    let assets: DashboardAssets
    let settings: DashboardSettings
    /// Numbers log tails under bounds (`TailLineCounter`).
    let tailLines = TailLineCounter()
    /// Open log streams, at most `OpenStreams.maximum`.
    let streams = OpenStreams()
    /// Sign-in attempts per address (`SignInLimit`).
    let signInLimit = SignInLimit()

    /// The sign-in form's double-submit cookie: `__Host-` prefixed (so `Path=/`) over TLS,
    /// for the same reason as the session's (`WebSessions.cookieName`).
    var loginCookie: String { settings.secureCookies ? "__Host-gantry_login" : "gantry_login" }
    var loginCookiePath: String { settings.secureCookies ? "/" : "/ui/login" }

    /// Registers the dashboard's routes on the API's router (`CoordinatorServer.Options.dashboard`).
    public static func install(
        _ router: Router<GantryRequestContext>, _ dependencies: APIRouter.Dependencies, _ settings: DashboardSettings
    ) {
        guard let sessions = dependencies.sessions else { return }
        let templates: DashboardTemplates
        do {
            templates = try DashboardTemplates()
        } catch {
            // The templates are compiled into the binary: a broken one is a build defect.
            preconditionFailure("the dashboard's templates do not parse: \(error)")
        }
        let dashboard = Dashboard(
            core: dependencies.core, authenticator: dependencies.authenticator, audit: dependencies.audit, sessions: sessions,
            templates: templates, assets: DashboardAssets(), settings: settings)
        dashboard.register(on: router)
    }

    func register(on router: Router<GantryRequestContext>) {
        router.get("/") { _, _ in DashboardPage.redirect("/ui/pipelines") }
        router.get("/ui") { _, _ in DashboardPage.redirect("/ui/pipelines") }
        // Browsers ask for it on every page; there is none, and saying so quietly keeps
        // their consoles clean.
        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }
        router.get("/ui/assets/{name}") { [assets] request, context in
            assets.response(name: try context.parameters.require("name"), ifNoneMatch: request.headers[.ifNoneMatch])
        }
        SignInRoutes.add(to: router, self)
        let pages = router.group("ui").add(
            middleware: DashboardSessionMiddleware(sessions: sessions, authenticator: authenticator))
        pages.get("pipelines") { request, context in try await pipelinesPage(request, context) }
        pages.get("pipelines/{id}") { request, context in try await pipelinePage(request, context) }
        pages.get("jobs/{id}") { request, context in try await jobPage(request, context) }
        pages.get("jobs/{id}/events") { request, context in try await logEvents(request, context) }
        pages.get("agents") { request, context in await agentsPage(request, context) }
        pages.get("deployments") { _, context in
            DashboardPage.html(templates.render(DashboardPage.layout(context, nav: "Deployments"), "deployments"))
        }
        pages.get("audit") { _, context in
            DashboardPage.html(templates.render(DashboardPage.layout(context, nav: "Audit"), "audit"))
        }
    }

    /// A `Set-Cookie` value: `HttpOnly` and `SameSite=Strict` always, `Secure` when the API
    /// is served over TLS.
    func cookie(_ name: String, _ value: String, maxAge: Int? = nil, path: String = "/") -> String {
        var text = "\(name)=\(value); Path=\(path); HttpOnly; SameSite=Strict"
        if let maxAge { text += "; Max-Age=\(maxAge)" }
        if settings.secureCookies { text += "; Secure" }
        return text
    }

    func notFound(_ context: GantryRequestContext, _ what: String) -> Response {
        var page = DashboardPage.layout(context, nav: "")
        page["heading"] = "Not found"
        page["message"] = what
        return DashboardPage.html(templates.render(page, "error"), status: .notFound)
    }
}
