import Foundation
import GRDB

/// One `schedules` row: a project's cron schedule on a branch, and its next tick.
public struct StoredSchedule: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "schedules"

    public var id: String
    public var project: String
    public var cron: String
    public var branch: String
    /// The next tick to fire; moved on, by compare-and-set, when a tick is claimed.
    public var nextRunAt: Date
    public var createdBy: String
    public var createdAt: Date

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

/// One `schedule_runs` row: a tick a coordinator claimed, and what came of it. The key
/// (schedule, tick) is what makes a tick fire once, whichever coordinator process or
/// restart looks at it.
public struct StoredScheduleRun: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "schedule_runs"

    public var scheduleId: String
    public var tick: Date
    public var pipelineId: String?
    /// Why the tick started nothing (the branch could not be resolved, the run-as identity
    /// was refused, …); nil while it is being started or once it started.
    public var error: String?
    /// The process that claimed it (`ScheduleService.instance`).
    public var owner: String
    public var claimedAt: Date

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

public protocol ScheduleStore: Sendable {
    func insertSchedule(_ schedule: StoredSchedule) throws
    func schedules(project: String) throws -> [StoredSchedule]
    func deleteSchedule(id: String, project: String) throws -> Bool
    /// Schedules whose next tick is at or before `now`, at most `limit`.
    func dueSchedules(now: Date, limit: Int) throws -> [StoredSchedule]
    /// In one transaction: moves the schedule's next tick from `tick` to `next` if it is
    /// still `tick`, and records the run. True if this process now owns the tick.
    func claim(_ schedule: StoredSchedule, tick: Date, next: Date, owner: String, now: Date) throws -> Bool
    /// Runs another process claimed before `claimedBefore` and left with neither a
    /// pipeline nor an error (it died between the claim and the submission), now this
    /// process's, with their schedules: each is started once more.
    func takeOverRuns(owner: String, claimedBefore: Date, now: Date, limit: Int) throws -> [(StoredSchedule, Date)]
    func finishRun(scheduleID: String, tick: Date, pipelineID: String?, error: String?) throws
    /// A pipeline submitted with exactly this message by a schedule, if there is one (a
    /// takeover's check that the dead process did not submit it before it died).
    func schedulePipeline(message: String) throws -> String?
    func runs(scheduleID: String, limit: Int) throws -> [StoredScheduleRun]
}

extension SQLiteStore: ScheduleStore {
    /// Migration "v18: schedules".
    static func createScheduleTables(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE schedules (
                    id TEXT PRIMARY KEY NOT NULL,
                    project TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
                    cron TEXT NOT NULL,
                    branch TEXT NOT NULL,
                    next_run_at DATETIME NOT NULL,
                    created_by TEXT NOT NULL,
                    created_at DATETIME NOT NULL
                );
                CREATE INDEX schedules_by_next ON schedules(next_run_at);
                CREATE TABLE schedule_runs (
                    schedule_id TEXT NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
                    tick DATETIME NOT NULL,
                    pipeline_id TEXT,
                    error TEXT,
                    owner TEXT NOT NULL,
                    claimed_at DATETIME NOT NULL,
                    PRIMARY KEY (schedule_id, tick)
                ) WITHOUT ROWID;
                """)
    }

    public func insertSchedule(_ schedule: StoredSchedule) throws {
        try database.write { try schedule.insert($0) }
    }

    public func schedules(project: String) throws -> [StoredSchedule] {
        try database.read { try StoredSchedule.filter(Column("project") == project).order(Column("created_at")).limit(100).fetchAll($0) }
    }

    public static let deleteScheduleRunsSQL = "DELETE FROM schedule_runs WHERE schedule_id = ?"
    public static let deleteScheduleSQL = "DELETE FROM schedules WHERE id = ? AND project = ?"

    public func deleteSchedule(id: String, project: String) throws -> Bool {
        try database.write { db in
            try db.execute(sql: Self.deleteScheduleRunsSQL, arguments: [id])
            try db.execute(sql: Self.deleteScheduleSQL, arguments: [id, project])
            return db.changesCount > 0
        }
    }

    public func dueSchedules(now: Date, limit: Int) throws -> [StoredSchedule] {
        try database.read {
            try StoredSchedule.filter(Column("next_run_at") <= now).order(Column("next_run_at")).limit(limit).fetchAll($0)
        }
    }

    /// The compare-and-set that moves a schedule past `tick`: arguments (next, id, tick).
    public static let moveScheduleSQL = "UPDATE schedules SET next_run_at = ? WHERE id = ? AND next_run_at = ?"

    public func claim(_ schedule: StoredSchedule, tick: Date, next: Date, owner: String, now: Date) throws -> Bool {
        guard next > tick else { return false }
        return try database.write { db in
            try db.execute(sql: Self.moveScheduleSQL, arguments: [next, schedule.id, tick])
            guard db.changesCount == 1 else { return false }
            // A run of this tick already recorded means it was fired: the schedule moves
            // on without firing it again.
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO schedule_runs (schedule_id, tick, pipeline_id, error, owner, claimed_at)
                    VALUES (?, ?, NULL, NULL, ?, ?)
                    """,
                arguments: [schedule.id, tick, owner, now])
            return db.changesCount == 1
        }
    }

    public func takeOverRuns(owner: String, claimedBefore: Date, now: Date, limit: Int) throws -> [(StoredSchedule, Date)] {
        try database.write { db in
            let runs = try StoredScheduleRun.filter(
                Column("pipeline_id") == nil && Column("error") == nil && Column("owner") != owner
                    && Column("claimed_at") < claimedBefore
            ).limit(limit).fetchAll(db)
            var taken: [(StoredSchedule, Date)] = []
            for run in runs {
                try db.execute(
                    sql: "UPDATE schedule_runs SET owner = ?, claimed_at = ? WHERE schedule_id = ? AND tick = ?",
                    arguments: [owner, now, run.scheduleId, run.tick])
                if let schedule = try StoredSchedule.fetchOne(db, key: run.scheduleId) { taken.append((schedule, run.tick)) }
            }
            return taken
        }
    }

    public static let finishRunSQL = "UPDATE schedule_runs SET pipeline_id = ?, error = ? WHERE schedule_id = ? AND tick = ?"

    public func finishRun(scheduleID: String, tick: Date, pipelineID: String?, error: String?) throws {
        try database.write { db in
            try db.execute(sql: Self.finishRunSQL, arguments: [pipelineID, error, scheduleID, tick])
        }
    }

    public static let schedulePipelineSQL = "SELECT id FROM pipelines WHERE source = 'schedule' AND message = ? LIMIT 1"

    public func schedulePipeline(message: String) throws -> String? {
        try database.read { db in try String.fetchOne(db, sql: Self.schedulePipelineSQL, arguments: [message]) }
    }

    public func runs(scheduleID: String, limit: Int) throws -> [StoredScheduleRun] {
        try database.read {
            try StoredScheduleRun.filter(Column("schedule_id") == scheduleID).order(Column("tick").desc).limit(limit).fetchAll($0)
        }
    }
}
