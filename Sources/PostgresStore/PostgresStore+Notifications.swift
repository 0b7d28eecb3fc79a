import Foundation
import GRDB
import GantryCoordinator

/// Notification endpoints, the events to fan out and the outbox, in a database several
/// coordinators share: each runs a `NotificationService` over the same rows.
extension PostgresStore: NotificationStore {
    /// How long a delivery handed out by `dueNotificationDeliveries` stays hidden from
    /// every other sender: well past one attempt's longest run (`NotificationService`'s
    /// 10 s timeouts), so a live sender is never doubled, and short enough that the
    /// deliveries of a coordinator that died mid-send go out again soon.
    public static let notificationLease: TimeInterval = 120

    /// The count and the insert under one table lock (`SHARE ROW EXCLUSIVE` conflicts with
    /// itself and with writers, not with readers), so two coordinators registering
    /// endpoints at once cannot both see room for one more and pass the limit.
    public func insertNotificationEndpoint(_ endpoint: StoredNotificationEndpoint, limit: Int) throws -> Bool {
        try pool.write { db in
            try await db.execute("LOCK TABLE notification_endpoints IN SHARE ROW EXCLUSIVE MODE")
            guard try await db.scalar(Int.self, "SELECT count(*) AS n FROM notification_endpoints") ?? 0 < limit else { return false }
            try await db.insert(endpoint)
            return true
        }
    }

    public func notificationEndpoints() throws -> [StoredNotificationEndpoint] {
        try pool.read { db in
            try await db.fetchAll(StoredNotificationEndpoint.self, "SELECT * FROM notification_endpoints ORDER BY created_at")
        }
    }

    public func notificationEndpoint(id: String) throws -> StoredNotificationEndpoint? {
        try pool.read { db in
            try await db.fetchOne(StoredNotificationEndpoint.self, "SELECT * FROM notification_endpoints WHERE id = ?", .values(id))
        }
    }

    public func deleteNotificationEndpoint(id: String) throws -> Bool {
        try pool.write { db in
            try await db.execute("DELETE FROM notification_deliveries WHERE endpoint_id = ?", .values(id))
            return try await db.execute("DELETE FROM notification_endpoints WHERE id = ?", .values(id)) > 0
        }
    }

    public func unprocessedNotificationEvents(limit: Int) throws -> [StoredNotificationEvent] {
        try pool.read { db in
            try await db.fetchAll(StoredNotificationEvent.self, SQLiteStore.unprocessedNotificationEventsSQL, .values(limit))
        }
    }

    /// An event is fanned out by one coordinator: the transaction first deletes its events
    /// (locking them in id order, so two overlapping fan-outs cannot deadlock), and if any
    /// is gone already, another coordinator fanned it out (or is doing so and has just
    /// committed). Then everything is rolled back, these deliveries included, and the next
    /// pass reads the events that are left; no event gets two sets of deliveries.
    public func enqueueNotificationDeliveries(
        _ deliveries: [StoredNotificationDelivery], processed events: [Int64], bounds: NotificationOutbox, now: Date
    ) throws {
        let ids = Set(events)
        try pool.writeOrRollBack { db in
            if !ids.isEmpty {
                let deleted = try await db.execute(
                    """
                    DELETE FROM notification_events WHERE id IN (
                        SELECT id FROM notification_events WHERE id = ANY(?::bigint[]) ORDER BY id FOR UPDATE)
                    """,
                    .values(Self.arrayLiteral(ids.sorted().map(String.init))))
                guard deleted == ids.count else { throw PostgresPool.Rollback(value: ()) }
            }
            for delivery in deliveries { try await db.insertDelivery(delivery) }
            for endpoint in Set(deliveries.map(\.endpointId)).sorted() {
                try await db.execute(
                    """
                    UPDATE notification_deliveries SET state = 'dropped', error = ?, next_attempt_at = NULL
                    WHERE seq IN (SELECT seq FROM notification_deliveries WHERE endpoint_id = ? AND state = 'pending'
                                  ORDER BY seq DESC OFFSET ?)
                    """,
                    .values(bounds.droppedReason, endpoint, bounds.maximumPending))
                try await db.execute(
                    """
                    DELETE FROM notification_deliveries
                    WHERE seq IN (SELECT seq FROM notification_deliveries WHERE endpoint_id = ? AND state != 'pending'
                                  ORDER BY seq DESC OFFSET ?)
                    """,
                    .values(endpoint, bounds.maximumKept))
            }
        }
    }

    /// A work queue: the due rows are locked `FOR UPDATE SKIP LOCKED` and leased in the same
    /// statement (their `next_attempt_at` moved `notificationLease` past `now`), so a row
    /// one coordinator takes is neither waited on nor handed out by another while it is
    /// being sent. `saveNotificationAttempt` then writes the real next attempt over the
    /// lease. The rows are returned as they were before the lease, as SQLite returns them.
    ///
    /// Unlike SQLite, asking again before the lease ends does not return the same rows.
    public func dueNotificationDeliveries(now: Date, limit: Int, excluding: Set<String>) throws -> [StoredNotificationDelivery] {
        guard limit > 0 else { return [] }
        let lease = now.addingTimeInterval(Self.notificationLease)
        let excluded = Self.arrayLiteral(excluding.sorted())
        return try pool.write { db in
            try await db.fetchAll(
                StoredNotificationDelivery.self,
                """
                WITH due AS MATERIALIZED (
                    SELECT * FROM notification_deliveries
                    WHERE state = 'pending' AND next_attempt_at <= ? AND NOT (id = ANY(?::text[]))
                    ORDER BY next_attempt_at, seq LIMIT ? FOR UPDATE SKIP LOCKED
                ), leased AS (
                    UPDATE notification_deliveries SET next_attempt_at = ? FROM due
                    WHERE notification_deliveries.seq = due.seq
                    RETURNING due.*
                )
                SELECT * FROM leased ORDER BY next_attempt_at, seq
                """,
                .values(now, excluded, limit, lease))
        }
    }

    public func saveNotificationAttempt(_ delivery: StoredNotificationDelivery) throws {
        try pool.write { db in _ = try await db.execute(SQLiteStore.saveNotificationAttemptSQL, delivery.attemptArguments()) }
    }

    public func notificationDeliveries(endpointID: String, before: Int64?, limit: Int) throws -> [StoredNotificationDelivery] {
        try pool.read { db in
            if let before {
                return try await db.fetchAll(
                    StoredNotificationDelivery.self,
                    "SELECT * FROM notification_deliveries WHERE endpoint_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                    .values(endpointID, before, limit))
            }
            return try await db.fetchAll(
                StoredNotificationDelivery.self, "SELECT * FROM notification_deliveries WHERE endpoint_id = ? ORDER BY seq DESC LIMIT ?",
                .values(endpointID, limit))
        }
    }

    /// See `resealAll` for why this is safe while another coordinator edits endpoints.
    public func resealNotificationSecrets(
        _ reseal: (StoredNotificationEndpoint) throws -> StoredNotificationEndpoint
    ) throws -> Int {
        try resealAll(StoredNotificationEndpoint.self, key: "id", reseal)
    }

    /// `{"a","b"}`: a text array parameter, which the statement casts (`?::text[]`).
    static func arrayLiteral(_ elements: [String]) -> String {
        let quoted = elements.map { element in
            "\"" + element.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return "{" + quoted.joined(separator: ",") + "}"
    }
}

extension PostgresSession {
    /// A delivery without its `seq` leaves it to the identity column, as SQLite's
    /// `INTEGER PRIMARY KEY AUTOINCREMENT` does; `seq` is sent only when the record has one.
    func insertDelivery(_ delivery: StoredNotificationDelivery) async throws {
        let columns = try delivery.databaseDictionary.filter { $0.key != "seq" || !$0.value.isNull }.sorted { $0.key < $1.key }
        let names = columns.map { "\"\($0.key)\"" }.joined(separator: ", ")
        let markers = Array(repeating: "?", count: columns.count).joined(separator: ", ")
        try await execute("INSERT INTO notification_deliveries (\(names)) VALUES (\(markers))", columns.map(\.value))
    }
}
