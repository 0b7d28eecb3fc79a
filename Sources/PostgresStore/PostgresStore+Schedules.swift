import Foundation
import GRDB
import GantryCoordinator

/// Cron schedules and their runs, in a database several coordinators share: every
/// coordinator looks at the same due schedules, and each tick must fire once.
extension PostgresStore: ScheduleStore {
    public func insertSchedule(_ schedule: StoredSchedule) throws {
        try pool.write { db in _ = try await db.insert(schedule) }
    }

    public func schedules(project: String) throws -> [StoredSchedule] {
        try pool.read { db in
            try await db.fetchAll(
                StoredSchedule.self, "SELECT * FROM schedules WHERE project = ? ORDER BY created_at LIMIT 100", .values(project))
        }
    }

    public func deleteSchedule(id: String, project: String) throws -> Bool {
        try pool.write { db in
            try await db.execute(SQLiteStore.deleteScheduleRunsSQL, .values(id))
            return try await db.execute(SQLiteStore.deleteScheduleSQL, .values(id, project)) > 0
        }
    }

    public func dueSchedules(now: Date, limit: Int) throws -> [StoredSchedule] {
        try pool.read { db in
            try await db.fetchAll(
                StoredSchedule.self, "SELECT * FROM schedules WHERE next_run_at <= ? ORDER BY next_run_at LIMIT ?", .values(now, limit))
        }
    }

    /// Claimed by exactly one coordinator: the compare-and-set on `next_run_at` is one
    /// `UPDATE`, and at READ COMMITTED a second coordinator's `UPDATE` of the same row
    /// waits for the first to commit, re-reads the row, finds `next_run_at` moved on and
    /// changes nothing. The run row is inserted `ON CONFLICT DO NOTHING` in the same
    /// transaction, so a tick recorded before (a schedule put back to it) moves on
    /// without firing again, as on SQLite.
    public func claim(_ schedule: StoredSchedule, tick: Date, next: Date, owner: String, now: Date) throws -> Bool {
        guard next > tick else { return false }
        return try pool.write { db in
            guard try await db.execute(SQLiteStore.moveScheduleSQL, .values(next, schedule.id, tick)) == 1 else { return false }
            return try await db.execute(
                """
                INSERT INTO schedule_runs (schedule_id, tick, pipeline_id, error, owner, claimed_at)
                VALUES (?, ?, NULL, NULL, ?, ?) ON CONFLICT DO NOTHING
                """,
                .values(schedule.id, tick, owner, now)) == 1
        }
    }

    /// One statement takes the runs over, so two coordinators looking for orphans at once
    /// never take the same run: `FOR UPDATE SKIP LOCKED` passes over a run another one is
    /// taking, and a run it took in the meantime is re-read with its new `claimed_at`,
    /// which is no longer old enough. Runs whose schedule is gone (deleted in between)
    /// are taken but not returned, as on SQLite.
    public func takeOverRuns(owner: String, claimedBefore: Date, now: Date, limit: Int) throws -> [(StoredSchedule, Date)] {
        guard limit > 0 else { return [] }
        return try pool.write { db in
            try await db.rows(
                """
                WITH taken AS (
                    UPDATE schedule_runs SET owner = ?1, claimed_at = ?2
                    WHERE (schedule_id, tick) IN (
                        SELECT schedule_id, tick FROM schedule_runs
                        WHERE pipeline_id IS NULL AND error IS NULL AND owner <> ?1 AND claimed_at < ?3
                        LIMIT ?4 FOR UPDATE SKIP LOCKED)
                    RETURNING schedule_id, tick
                )
                SELECT schedules.*, taken.tick AS taken_tick FROM taken JOIN schedules ON schedules.id = taken.schedule_id
                ORDER BY taken.schedule_id, taken.tick
                """,
                .values(owner, now, claimedBefore, limit)
            ).map { row in (try StoredSchedule(row: row), row["taken_tick"]) }
        }
    }

    public func finishRun(scheduleID: String, tick: Date, pipelineID: String?, error: String?) throws {
        try pool.write { db in _ = try await db.execute(SQLiteStore.finishRunSQL, .values(pipelineID, error, scheduleID, tick)) }
    }

    public func schedulePipeline(message: String) throws -> String? {
        try pool.read { db in try await db.scalar(String.self, SQLiteStore.schedulePipelineSQL, .values(message)) }
    }

    public func runs(scheduleID: String, limit: Int) throws -> [StoredScheduleRun] {
        try pool.read { db in
            try await db.fetchAll(
                StoredScheduleRun.self, "SELECT * FROM schedule_runs WHERE schedule_id = ? ORDER BY tick DESC LIMIT ?",
                .values(scheduleID, limit))
        }
    }
}
