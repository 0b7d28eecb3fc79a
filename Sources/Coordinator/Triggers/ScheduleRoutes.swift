import Foundation
import GantryProtocol
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// `POST/GET /v1/projects/{name}/schedules`, `DELETE /v1/projects/{name}/schedules/{id}`:
/// a project's cron schedules (`ScheduleService` fires them).
extension APIRouter {
    static func addScheduleRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let core = dependencies.core
        let audit = dependencies.audit
        let store = core.store as? any ScheduleStore & ProjectStore

        router.on(.createSchedule, audit: audit) { request, context -> Response in
            guard let store else { return projectsUnavailable() }
            let name = try context.parameter("name")
            context.audit.set(object: "project:\(name.logSafe(maximum: 80))")
            guard try store.project(named: name) != nil else {
                return APIResponses.error(.notFound, code: "not_found", message: "no project \(name.logSafe(maximum: 80))")
            }
            let body: ByteBuffer
            switch await BoundedBody.collect(request, upTo: 4096, what: "the request body") {
            case .success(let collected): body = collected
            case .failure(let refusal): return refusal.response
            }
            guard let create = try? API.decoder.decode(API.CreateSchedule.self, from: Data(buffer: body)) else {
                return APIResponses.error(.badRequest, code: "bad_request", message: "the body must be JSON like {\"cron\": \"0 2 * * *\", \"branch\": \"main\"}")
            }
            let cron: CronSchedule
            switch Result(catching: { () throws(CronSchedule.Invalid) -> CronSchedule in try CronSchedule(parsing: create.cron) }) {
            case .success(let parsed): cron = parsed
            case .failure(let invalid):
                return APIResponses.error(.unprocessableContent, code: "invalid_schedule", message: invalid.description)
            }
            guard ScheduleRoutesRules.isValidBranch(create.branch) else {
                return APIResponses.error(
                    .unprocessableContent, code: "invalid_schedule",
                    message: "branch: 1-255 bytes of a git branch name (no spaces, control characters, `..`, `~^:?*[\\`, no leading `-`)")
            }
            let now = Date()
            guard let next = cron.next(after: now) else {
                return APIResponses.error(.unprocessableContent, code: "invalid_schedule", message: "`\(cron)` names no time in the next five years")
            }
            let schedule = StoredSchedule(
                id: UUID().uuidString.lowercased(), project: name, cron: cron.description, branch: create.branch, nextRunAt: next,
                createdBy: context.principal?.identity ?? "", createdAt: now)
            guard try store.schedules(project: name).count < 20 else {
                return APIResponses.error(.conflict, code: "too_many", message: "a project has at most 20 schedules")
            }
            try store.insertSchedule(schedule)
            context.audit.add("schedule", schedule.id)
            context.audit.add("cron", schedule.cron)
            return APIResponses.json(try view(schedule, store), status: .created)
        }

        router.on(.listSchedules, audit: audit) { _, context -> Response in
            guard let store else { return projectsUnavailable() }
            let name = try context.parameter("name")
            return APIResponses.json(API.ScheduleList(schedules: try store.schedules(project: name).map { try view($0, store) }))
        }

        router.on(.deleteSchedule, audit: audit) { _, context -> Response in
            guard let store else { return projectsUnavailable() }
            let (name, id) = (try context.parameter("name"), try context.parameter("id"))
            context.audit.set(object: "schedule:\(id.logSafe(maximum: 80))")
            guard let schedule = try store.schedules(project: name).first(where: { $0.id == id }),
                try store.deleteSchedule(id: id, project: name)
            else {
                return APIResponses.error(.notFound, code: "not_found", message: "project \(name.logSafe(maximum: 80)) has no schedule \(id.logSafe(maximum: 80))")
            }
            return APIResponses.json(try view(schedule, store))
        }
    }

    static func view(_ schedule: StoredSchedule, _ store: any ScheduleStore) throws -> API.Schedule {
        API.Schedule(
            id: schedule.id, project: schedule.project, cron: schedule.cron, branch: schedule.branch,
            nextRunAt: schedule.nextRunAt, createdBy: schedule.createdBy, createdAt: schedule.createdAt,
            runs: try store.runs(scheduleID: schedule.id, limit: 10).map {
                API.ScheduleRun(tick: $0.tick, pipelineId: $0.pipelineId, error: $0.error)
            })
    }
}

enum ScheduleRoutesRules {
    /// A git branch name as `git check-ref-format --branch` would take it, strictly.
    static func isValidBranch(_ branch: String) -> Bool {
        guard (1...255).contains(branch.utf8.count), !branch.hasPrefix("-"), !branch.hasPrefix("/"), !branch.hasSuffix("/"),
            !branch.hasSuffix(".lock"), !branch.hasSuffix("."), !branch.contains(".."), !branch.contains("//"), !branch.contains("@{")
        else { return false }
        return branch.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F && !"~^:?*[\\".unicodeScalars.contains($0) }
    }
}
