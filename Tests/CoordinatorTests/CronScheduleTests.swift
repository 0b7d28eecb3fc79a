import Foundation
@testable import GantryCoordinator
import GantryPostgresStore
import Logging
import Synchronization
import Testing

/// Cron expressions and the ticks they name (UTC), and a tick claimed once in every store
/// back end, by one of several coordinators sharing a PostgreSQL database.
@Suite("Cron schedules")
struct CronScheduleTests {
    static func utc(_ text: String) -> Date {
        try! Date(text, strategy: Date.ISO8601FormatStyle())
    }

    @Test func nextTicks() throws {
        func next(_ cron: String, after: String) throws -> Date? {
            try CronSchedule(parsing: cron).next(after: Self.utc(after))
        }
        #expect(try next("*/15 * * * *", after: "2026-12-01T10:07:30Z") == Self.utc("2026-12-01T10:15:00Z"))
        // Strictly after a tick.
        #expect(try next("*/15 * * * *", after: "2026-12-01T10:15:00Z") == Self.utc("2026-12-01T10:30:00Z"))
        // Weekdays at 02:00: Friday 4 December 03:00 → Monday 7 December.
        #expect(try next("0 2 * * 1-5", after: "2026-12-04T03:00:00Z") == Self.utc("2026-12-07T02:00:00Z"))
        // 29 February: the next leap year.
        #expect(try next("0 0 29 2 *", after: "2026-03-01T00:00:00Z") == Self.utc("2028-02-29T00:00:00Z"))
        #expect(try next("0 0 30 2 *", after: "2026-03-01T00:00:00Z") == nil)
        #expect(try next("@daily", after: "2026-12-01T23:59:30Z") == Self.utc("2026-12-02T00:00:00Z"))
        #expect(try next("@monthly", after: "2026-12-15T00:00:00Z") == Self.utc("2027-01-01T00:00:00Z"))
        // Day of month and day of week both restricted: either matches (the 1st, or a Monday).
        #expect(try next("0 12 1 * 1", after: "2026-12-01T13:00:00Z") == Self.utc("2026-12-07T12:00:00Z"))
        // A field starting with `*` does not restrict the day (Vixie cron): odd days AND Mondays.
        #expect(try next("0 9 */2 * 1", after: "2026-12-01T10:00:00Z") == Self.utc("2026-12-07T09:00:00Z"))
        // 7 is Sunday too; lists and ranges with steps.
        #expect(try next("0 0 * * 7", after: "2026-12-01T00:00:00Z") == Self.utc("2026-12-06T00:00:00Z"))
        #expect(try next("5,35 8-18/5 * * *", after: "2026-12-01T09:00:00Z") == Self.utc("2026-12-01T13:05:00Z"))
        #expect(try next("30 23 31 12 *", after: "2026-12-31T23:31:00Z") == Self.utc("2027-12-31T23:30:00Z"))
        // Fractions of a second never name the current minute again (floating point
        // once put the next tick a hair before the minute).
        let cron = try CronSchedule(parsing: "* * * * *")
        for millisecond in stride(from: 1, through: 59_999, by: 997) {
            let date = Self.utc("2026-12-01T20:32:00Z").addingTimeInterval(Double(millisecond) / 1000)
            #expect(cron.next(after: date) == Self.utc("2026-12-01T20:33:00Z"), "\(millisecond) ms")
        }
    }

    @Test func badExpressionsSayWhy() {
        for text in ["* * *", "+5 * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *", "5-2 * * * *", "a * * * *", "@reboot", "1,,2 * * * *", String(repeating: "1 ", count: 150)] {
            #expect(throws: CronSchedule.Invalid.self, "\(text)") { try CronSchedule(parsing: text) }
        }
        #expect(ScheduleRoutesRules.isValidBranch("release/1.2") && ScheduleRoutesRules.isValidBranch("main"))
        for branch in ["", "-x", "a..b", "a b", "a~1", "x.lock", "/a", "a/", "a\u{1}"] {
            #expect(!ScheduleRoutesRules.isValidBranch(branch), "\(branch)")
        }
    }

    @Test(arguments: StoreFactory.all)
    func aTickIsClaimedOnceAndADeadProcesssRunIsTakenOver(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any ProjectStore & ScheduleStore)
        #expect(
            try store.insertProject(
                StoredProject(
                    name: "app", repository: "https://h/app.git", pipelineFile: ".gantry/pipeline.yml", branches: "[]", tags: "[]",
                    cancelSuperseded: false, runAs: nil, sealedSecret: Data([1]), keyId: "k", createdBy: "admin", createdAt: Date())))
        let tick = Self.utc("2026-12-01T10:00:00Z")
        let schedule = StoredSchedule(
            id: "s1", project: "app", cron: "0 * * * *", branch: "main", nextRunAt: tick, createdBy: "admin", createdAt: tick)
        try store.insertSchedule(schedule)
        let now = tick.addingTimeInterval(5)
        #expect(try store.dueSchedules(now: now, limit: 10).map(\.id) == ["s1"])
        let next = Self.utc("2026-12-01T11:00:00Z")
        // Two processes (or one after a restart) see the same due tick: one claims it.
        #expect(try store.claim(schedule, tick: tick, next: next, owner: "process-1", now: now))
        #expect(try !store.claim(schedule, tick: tick, next: next, owner: "process-2", now: now))
        // A schedule that points at a tick already run moves on without running it again.
        var stuck = schedule
        stuck.nextRunAt = next
        #expect(try !store.claim(stuck, tick: next, next: next, owner: "process-2", now: now), "next must be later than the tick")
        #expect(try store.dueSchedules(now: now, limit: 10).isEmpty)
        // process-1 died before submitting: process-2 takes the run over once it is old enough.
        let later = now.addingTimeInterval(200)
        #expect(try store.takeOverRuns(owner: "process-2", claimedBefore: now, now: later, limit: 10).isEmpty)
        let taken = try store.takeOverRuns(owner: "process-2", claimedBefore: now.addingTimeInterval(1), now: later, limit: 10)
        #expect(taken.map(\.1) == [tick] && taken.map(\.0.id) == ["s1"])
        // Taken over, it is fresh again: a third process leaves it to process-2.
        #expect(try store.takeOverRuns(owner: "process-3", claimedBefore: now.addingTimeInterval(1), now: later, limit: 10).isEmpty)
        try store.finishRun(scheduleID: "s1", tick: tick, pipelineID: nil, error: "the repository has no branch main")
        #expect(try store.takeOverRuns(owner: "process-4", claimedBefore: later.addingTimeInterval(1), now: later, limit: 10).isEmpty)
        #expect(try store.runs(scheduleID: "s1", limit: 10).map(\.error) == ["the repository has no branch main"])
        #expect(try store.deleteSchedule(id: "s1", project: "app"))
        #expect(try store.runs(scheduleID: "s1", limit: 10).isEmpty)
    }

    @Test(arguments: StoreFactory.all)
    func schedulesAreListedByProjectAndRunsNewestFirst(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any ProjectStore & ScheduleStore)
        for name in ["app", "api"] { #expect(try store.insertProject(Self.project(name))) }
        let tick = Self.utc("2026-12-01T10:00:00Z")
        for (n, project) in ["app", "api", "app"].enumerated() {
            try store.insertSchedule(
                StoredSchedule(
                    id: "s\(n)", project: project, cron: "0 * * * *", branch: "main", nextRunAt: tick.addingTimeInterval(Double(n) * 60),
                    createdBy: "admin", createdAt: tick.addingTimeInterval(Double(-n))))
        }
        #expect(throws: (any Error).self, "an id is taken once") {
            try store.insertSchedule(
                StoredSchedule(id: "s0", project: "app", cron: "* * * * *", branch: "x", nextRunAt: tick, createdBy: "a", createdAt: tick))
        }
        #expect(try store.schedules(project: "app").map(\.id) == ["s2", "s0"], "oldest first")
        #expect(try store.schedules(project: "app").last?.nextRunAt == tick)
        #expect(try store.dueSchedules(now: tick.addingTimeInterval(60), limit: 10).map(\.id) == ["s0", "s1"])
        #expect(try store.dueSchedules(now: tick.addingTimeInterval(600), limit: 2).map(\.id) == ["s0", "s1"])
        #expect(try !store.deleteSchedule(id: "s1", project: "app"), "another project's schedule")

        let s0 = try #require(try store.schedules(project: "app").last)
        var ticks: [Date] = []
        for hour in 0..<3 {
            let at = tick.addingTimeInterval(Double(hour) * 3600)
            var current = s0
            current.nextRunAt = at
            #expect(try store.claim(current, tick: at, next: at.addingTimeInterval(3600), owner: "p", now: at))
            ticks.append(at)
        }
        try store.finishRun(scheduleID: "s0", tick: ticks[1], pipelineID: "pipe-1", error: nil)
        let runs = try store.runs(scheduleID: "s0", limit: 2)
        #expect(runs.map(\.tick) == [ticks[2], ticks[1]])
        #expect(runs.map(\.pipelineId) == [nil, "pipe-1"])
        #expect(runs.first == StoredScheduleRun(scheduleId: "s0", tick: ticks[2], pipelineId: nil, error: nil, owner: "p", claimedAt: ticks[2]))
        #expect(try store.runs(scheduleID: "s1", limit: 10).isEmpty)
        #expect(try store.deleteSchedule(id: "s0", project: "app"))
        #expect(try store.schedules(project: "app").map(\.id) == ["s2"])
        // Deleting a project takes its schedules with it.
        #expect(try store.deleteProject(named: "api"))
        #expect(try store.dueSchedules(now: tick.addingTimeInterval(600), limit: 10).map(\.id) == ["s2"])
    }

    @Test(arguments: StoreFactory.all)
    func aScheduledPipelineIsFoundByItsMessage(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any ScheduleStore)
        var pipeline = Fixture.pipeline("p1", at: Fixture.t0)
        pipeline.source = "schedule"
        pipeline.message = "scheduled build (0 * * * *), schedule s1, tick 2026-12-01T10:00:00Z"
        try scratch.store.insert(pipeline: pipeline, jobs: [])
        var manual = Fixture.pipeline("p2", at: Fixture.t0)
        manual.message = "scheduled build (0 * * * *), schedule s1, tick 2026-12-01T11:00:00Z"
        try scratch.store.insert(pipeline: manual, jobs: [])
        #expect(try store.schedulePipeline(message: pipeline.message) == "p1")
        #expect(try store.schedulePipeline(message: manual.message) == nil, "submitted by someone else")
    }

    static func project(_ name: String) -> StoredProject {
        StoredProject(
            name: name, repository: "https://h/\(name).git", pipelineFile: ".gantry/pipeline.yml", branches: "[]", tags: "[]",
            cancelSuperseded: false, runAs: nil, sealedSecret: Data([1]), keyId: "k", createdBy: "admin", createdAt: utc("2026-01-01T00:00:00Z"))
    }

    /// Two coordinators (two `PostgresStore`s, each with its own connections) on one
    /// database, many threads each claiming the same due ticks at once: every tick has
    /// exactly one winner and one run row, and an orphaned run is taken over by one.
    @Test func coordinatorsSharingADatabaseClaimEachTickOnce() throws {
        let url = try PostgresServer.shared.get().makeDatabase()
        let stores = try (0..<2).map { _ in try PostgresStore(url: url, logger: Logger(label: "test")) }
        defer { for store in stores { store.pool.shutdown() } }
        #expect(try stores[0].insertProject(Self.project("app")))
        let tick = Self.utc("2026-12-01T10:00:00Z")
        let schedules = (0..<10).map { n in
            StoredSchedule(id: "s\(n)", project: "app", cron: "0 * * * *", branch: "main", nextRunAt: tick, createdBy: "admin", createdAt: tick)
        }
        for schedule in schedules { try stores[1].insertSchedule(schedule) }
        let now = tick.addingTimeInterval(5)
        let wins = Mutex<[String: [String]]>([:])
        let failures = Mutex<[String]>([])
        Self.onThreads(16) { worker in
            let store = stores[worker % 2]
            for schedule in schedules {
                do {
                    if try store.claim(schedule, tick: tick, next: tick.addingTimeInterval(3600), owner: "w\(worker)", now: now) {
                        wins.withLock { $0[schedule.id, default: []].append("w\(worker)") }
                    }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        let claimed = wins.withLock { $0 }
        #expect(claimed.keys.sorted() == schedules.map(\.id).sorted())
        #expect(claimed.values.allSatisfy { $0.count == 1 }, "one claim per tick: \(claimed)")
        for schedule in schedules {
            let runs = try stores[0].runs(scheduleID: schedule.id, limit: 10)
            #expect(runs.map(\.owner) == claimed[schedule.id], "the run is the winner's")
        }

        // Every claimer died: each run is taken over by exactly one of the racing processes.
        let taken = Mutex<[String: Int]>([:])
        Self.onThreads(8) { worker in
            do {
                let runs = try stores[worker % 2].takeOverRuns(
                    owner: "t\(worker)", claimedBefore: now.addingTimeInterval(1), now: now.addingTimeInterval(200), limit: 4)
                taken.withLock { for (schedule, _) in runs { $0[schedule.id, default: 0] += 1 } }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(taken.withLock { $0 }.values.allSatisfy { $0 == 1 })
        #expect(taken.withLock { $0 }.values.reduce(0, +) == 10, "8 workers taking 4 each take all 10")
    }

    /// Runs `body` on `count` threads of its own at once (not the cooperative pool, which
    /// has a thread per core) and waits for all of them.
    static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            Thread {
                body(index)
                group.leave()
            }.start()
        }
        group.wait()
    }
}
