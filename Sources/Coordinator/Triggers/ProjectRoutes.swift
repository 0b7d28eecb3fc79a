import Foundation
import GantryProtocol
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// `POST/GET /v1/projects`, `GET/DELETE /v1/projects/{name}`: repositories whose pushes
/// start pipelines (`WebhookRoutes`). Creating one answers its webhook secret, once.
extension APIRouter {
    /// Longest `POST /v1/projects` body.
    static let maximumProjectBody = 64 * 1024

    static func addProjectRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let core = dependencies.core
        let audit = dependencies.audit
        let store = dependencies.projects ?? (core.store as? any ProjectStore)

        router.on(.createProject, audit: audit) { request, context -> Response in
            guard let store else { return projectsUnavailable() }
            let body: ByteBuffer
            switch await BoundedBody.collect(request, upTo: maximumProjectBody, what: "the request body") {
            case .success(let collected): body = collected
            case .failure(let refusal): return refusal.response
            }
            let settings: ProjectSettings
            do {
                settings = try ProjectSettings(try API.decoder.decode(API.CreateProject.self, from: Data(buffer: body)))
            } catch let invalid as ProjectSettings.Invalid {
                return APIResponses.error(.unprocessableContent, code: "invalid_project", message: invalid.description)
            } catch {
                return APIResponses.error(
                    .badRequest, code: "bad_request",
                    message: "the body must be JSON like {\"name\": \"app\", \"repository\": \"https://…\"}: \(error)")
            }
            context.audit.set(object: "project:\(settings.name)")
            if let runAs = settings.runAs {
                guard let identity = try dependencies.identities.identity(named: runAs), identity.disabledAt == nil else {
                    return APIResponses.error(
                        .unprocessableContent, code: "invalid_project",
                        message: "run_as: no enabled identity \(runAs.logSafe(maximum: 80)) (gantry identity create)")
                }
            }
            let (secret, sealed, keyID) = try core.secrets.newWebhookSecret(project: settings.name)
            let row = StoredProject(
                name: settings.name, repository: settings.repository, pipelineFile: settings.pipelineFile,
                branches: StoredProject.json(settings.branches), tags: StoredProject.json(settings.tags),
                cancelSuperseded: settings.cancelSuperseded, runAs: settings.runAs, sealedSecret: sealed,
                keyId: keyID, createdBy: context.principal?.identity ?? "", createdAt: Date())
            guard try store.insertProject(row) else {
                return APIResponses.error(.conflict, code: "exists", message: "a project named \(settings.name) exists")
            }
            context.audit.add("repository", ProjectSettings.redacted(settings.repository).logSafe(maximum: 200))
            context.audit.add("run_as", settings.runAs ?? row.submitter)
            var view = Self.view(row)
            view.webhookSecret = secret
            return APIResponses.json(view, status: .created)
        }

        router.on(.listProjects, audit: audit) { request, _ -> Response in
            guard let store else { return projectsUnavailable() }
            switch WholeListPage.query(request.uri.queryParameters) {
            case .failure(let refusal): return APIResponses.error(.badRequest, code: "bad_request", message: refusal.text)
            case .success(let query):
                let (page, next) = WholeListPage.page(try store.projects(), key: \.name, query)
                return APIResponses.json(API.ProjectList(projects: page.map(Self.view), nextCursor: next))
            }
        }

        router.on(.getProject, audit: audit) { _, context -> Response in
            guard let store else { return projectsUnavailable() }
            let name = try context.parameter("name")
            guard let project = try store.project(named: name) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no project \(name.logSafe(maximum: 80))")
            }
            return APIResponses.json(Self.view(project))
        }

        router.on(.deleteProject, audit: audit) { _, context -> Response in
            guard let store else { return projectsUnavailable() }
            let name = try context.parameter("name")
            context.audit.set(object: "project:\(name.logSafe(maximum: 80))")
            guard let project = try store.project(named: name), try store.deleteProject(named: name) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no project \(name.logSafe(maximum: 80))")
            }
            return APIResponses.json(Self.view(project))
        }
    }

    static func view(_ project: StoredProject) -> API.Project {
        API.Project(
            name: project.name, repository: ProjectSettings.redacted(project.repository), pipelineFile: project.pipelineFile,
            branches: project.branchPatterns, tags: project.tagPatterns, cancelSuperseded: project.cancelSuperseded,
            runAs: project.runAs, createdBy: project.createdBy,
            createdAt: project.createdAt, webhookPath: APIRoute.receiveWebhook.path(["name": project.name]))
    }

    static func projectsUnavailable() -> Response {
        APIResponses.error(.serviceUnavailable, code: "unavailable", message: "this coordinator keeps no projects")
    }
}
