import Foundation
@testable import GantryCoordinator
import Testing

/// Cron expressions and the ticks they name (UTC), and a tick claimed once in the store.
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

    @Test func aTickIsClaimedOnceAndADeadProcesssRunIsTakenOver() throws {
        let directory = NSTemporaryDirectory() + "gantry-schedules-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLiteStore(path: directory + "/gantry.sqlite")
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
}
