import Foundation
import GantryPipeline
import GantryProtocol
import Logging
import ServiceLifecycle

/// Fires projects' cron schedules (`gantry schedule add`): every few seconds, each due
/// schedule's tick is claimed by compare-and-set on its `next_run_at` (in the same
/// transaction as the tick's run row), so a tick fires once whichever process or restart
/// sees it; then the branch's head commit is resolved (`GitRemote`) and the project's
/// bootstrap pipeline submitted at it, as the project's run-as identity.
///
/// A coordinator that was down over several ticks fires the first of them once when it
/// comes back, not every one it missed; a process that died between a claim and its
/// submission leaves a run that the next process takes over after two minutes. Failures
/// (no git, an unreachable repository, a refused run-as identity) are the run's error,
/// in `gantry schedule list` and the audit log; the schedule goes on to its next tick.
public struct ScheduleService: Service {
    let core: CoordinatorCore
    let store: any ScheduleStore & ProjectStore
    let identities: any IdentityStore
    let audit: AuditLog
    let allowFileURLs: Bool
    let logger: Logger
    var interval: Duration = .seconds(5)

    /// This process, in the runs it claims.
    static let instance = UUID().uuidString

    public init(
        core: CoordinatorCore, store: any ScheduleStore & ProjectStore, identities: any IdentityStore, audit: AuditLog,
        allowFileURLs: Bool, logger: Logger
    ) {
        self.core = core
        self.store = store
        self.identities = identities
        self.audit = audit
        self.allowFileURLs = allowFileURLs
        self.logger = logger
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await pass(now: Date())
                try await Task.sleep(for: interval)
            }
        }
    }

    /// Ticks fired at once: a tick waits on `git ls-remote` (up to 60 s), and one slow
    /// repository must not hold every other schedule back.
    static let parallelFires = 8

    /// One look at what is due. Bounded: 50 schedules and 20 taken-over runs a pass, each
    /// claimed before any is fired, at most `parallelFires` fired at once.
    func pass(now: Date) async {
        var claimed: [(StoredSchedule, Date)] = []
        do {
            claimed += try store.takeOverRuns(owner: Self.instance, claimedBefore: now.addingTimeInterval(-120), now: now, limit: 20)
            for schedule in try store.dueSchedules(now: now, limit: 50) {
                let tick = schedule.nextRunAt
                let next = (try? CronSchedule(parsing: schedule.cron))?.next(after: max(Date(), tick)) ?? Date.distantFuture
                if try store.claim(schedule, tick: tick, next: next, owner: Self.instance, now: Date()) { claimed.append((schedule, tick)) }
            }
        } catch {
            logger.warning("schedule pass failed: \(error)")
        }
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for (schedule, tick) in claimed {
                if running == Self.parallelFires {
                    await group.next()
                    running -= 1
                }
                group.addTask { await fire(schedule, tick: tick) }
                running += 1
            }
        }
    }

    /// The message a tick's pipeline is submitted with: unique per schedule and tick, so a
    /// takeover can tell whether the process that claimed the tick submitted it already.
    static func message(_ schedule: StoredSchedule, tick: Date) -> String {
        "scheduled build (\(schedule.cron)), schedule \(schedule.id), tick \(tick.formatted(Date.ISO8601FormatStyle()))"
    }

    func fire(_ schedule: StoredSchedule, tick: Date) async {
        func record(_ outcome: String, _ detail: [String: String], object: String) {
            audit.record(
                AuditEvent(
                    actor: "schedule:\(schedule.id)", tokenID: nil, address: nil, action: "pipeline.trigger", object: object,
                    outcome: outcome, detail: detail.merging(["tick": "\(tick)", "cron": schedule.cron]) { $1 }))
        }
        let message = Self.message(schedule, tick: tick)
        do {
            // Taken over from a process that died after submitting but before recording it.
            if let submitted = try store.schedulePipeline(message: message) {
                try store.finishRun(scheduleID: schedule.id, tickDate: tick, pipelineID: submitted, error: nil)
                return
            }
            guard let project = try store.project(named: schedule.project) else { throw GitRemote.Failure(description: "the project is gone") }
            let runAs: Principal?
            switch try ProjectRunAs.resolve(project, identities: identities) {
            case .success(let principal): runAs = principal
            case .failure(let why): throw why
            }
            let commit = try await GitRemote.branchHead(repository: project.repository, branch: schedule.branch, allowFile: allowFileURLs)
            let submission = API.SubmitPipeline(
                yaml: PipelineBootstrap.yaml(uploading: project.pipelineFile), file: PipelineBootstrap.file,
                repository: project.repository, commit: commit, branch: schedule.branch, message: message)
            let pipeline = try await core.submit(submission, source: "schedule", submittedBy: project.submitter) { definition in
                try runAs?.checkMayDeploy(definition)
            }
            try store.finishRun(scheduleID: schedule.id, tickDate: tick, pipelineID: pipeline.id, error: nil)
            record("succeeded", ["commit": commit, "branch": schedule.branch], object: "pipeline:\(pipeline.id)")
        } catch is CancellationError {
            // The coordinator is stopping: the run stays unfinished, for the next process.
        } catch {
            if Task.isCancelled { return }
            let why = "\(error)".logSafe(maximum: 500)
            try? store.finishRun(scheduleID: schedule.id, tickDate: tick, pipelineID: nil, error: why)
            record("failed", ["reason": why], object: "project:\(schedule.project)")
            logger.warning("a scheduled build started nothing", metadata: ["schedule": "\(schedule.id)", "error": "\(why)"])
        }
    }
}

extension ScheduleStore {
    func finishRun(scheduleID: String, tickDate: Date, pipelineID: String?, error: String?) throws {
        try finishRun(scheduleID: scheduleID, tick: tickDate, pipelineID: pipelineID, error: error)
    }
}
