import Foundation
import GRDB

extension SQLiteStore: NotificationStore {
    /// The schema of Notifications/ (migration "v20: notifications").
    static func createNotificationTables(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE notification_endpoints (
                    id TEXT PRIMARY KEY NOT NULL,
                    url TEXT NOT NULL,
                    events TEXT NOT NULL,
                    project TEXT,
                    description TEXT NOT NULL,
                    sealed_secret BLOB NOT NULL,
                    key_id TEXT NOT NULL,
                    created_by TEXT NOT NULL,
                    created_at DATETIME NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE notification_events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    type TEXT NOT NULL,
                    pipeline_id TEXT NOT NULL,
                    job_id TEXT,
                    occurred_at DATETIME NOT NULL,
                    processed INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX notification_events_unprocessed ON notification_events(processed, id);
                CREATE TABLE notification_deliveries (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    endpoint_id TEXT NOT NULL REFERENCES notification_endpoints(id) ON DELETE CASCADE,
                    event TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    state TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    status_code INTEGER,
                    error TEXT,
                    response_body TEXT,
                    duration_ms INTEGER,
                    created_at DATETIME NOT NULL,
                    next_attempt_at DATETIME,
                    last_attempt_at DATETIME,
                    delivered_at DATETIME
                );
                CREATE INDEX notification_deliveries_due ON notification_deliveries(state, next_attempt_at);
                CREATE INDEX notification_deliveries_by_endpoint ON notification_deliveries(endpoint_id, seq);
                """)
    }

    public static let insertNotificationEventSQL =
        "INSERT INTO notification_events (type, pipeline_id, job_id, occurred_at) VALUES (?, ?, ?, ?)"

    /// Called from `commit`, inside the lifecycle's transaction.
    static func insert(_ events: [StoredNotificationEvent], _ db: Database) throws {
        for event in events {
            try db.cachedStatement(sql: insertNotificationEventSQL).execute(
                arguments: [event.type, event.pipelineId, event.jobId, event.occurredAt])
        }
    }

    public func insertNotificationEndpoint(_ endpoint: StoredNotificationEndpoint, limit: Int) throws -> Bool {
        try database.write { db in
            guard try StoredNotificationEndpoint.fetchCount(db) < limit else { return false }
            try endpoint.insert(db)
            return true
        }
    }

    public func notificationEndpoints() throws -> [StoredNotificationEndpoint] {
        try database.read { try StoredNotificationEndpoint.order(Column("created_at")).fetchAll($0) }
    }

    public func notificationEndpoint(id: String) throws -> StoredNotificationEndpoint? {
        try database.read { try StoredNotificationEndpoint.fetchOne($0, key: id) }
    }

    public func deleteNotificationEndpoint(id: String) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "DELETE FROM notification_deliveries WHERE endpoint_id = ?", arguments: [id])
            return try StoredNotificationEndpoint.deleteOne(db, key: id)
        }
    }

    public static let unprocessedNotificationEventsSQL =
        "SELECT id, type, pipeline_id, job_id, occurred_at FROM notification_events WHERE processed = 0 ORDER BY id LIMIT ?"

    public func unprocessedNotificationEvents(limit: Int) throws -> [StoredNotificationEvent] {
        try database.read { db in
            try StoredNotificationEvent.fetchAll(db, sql: Self.unprocessedNotificationEventsSQL, arguments: [limit])
        }
    }

    public func enqueueNotificationDeliveries(
        _ deliveries: [StoredNotificationDelivery], processed events: [Int64], bounds: NotificationOutbox, now: Date
    ) throws {
        try database.write { db in
            for var delivery in deliveries { try delivery.insert(db) }
            // Fanned-out events are not needed again: deleted, so the table stays small.
            for id in events { try db.execute(sql: "DELETE FROM notification_events WHERE id = ?", arguments: [id]) }
            for endpoint in Set(deliveries.map(\.endpointId)) {
                try db.execute(
                    sql: """
                        UPDATE notification_deliveries SET state = 'dropped', error = ?, next_attempt_at = NULL
                        WHERE seq IN (SELECT seq FROM notification_deliveries WHERE endpoint_id = ? AND state = 'pending'
                                      ORDER BY seq DESC LIMIT -1 OFFSET ?)
                        """,
                    arguments: [bounds.droppedReason, endpoint, bounds.maximumPending])
                try db.execute(
                    sql: """
                        DELETE FROM notification_deliveries
                        WHERE seq IN (SELECT seq FROM notification_deliveries WHERE endpoint_id = ? AND state != 'pending'
                                      ORDER BY seq DESC LIMIT -1 OFFSET ?)
                        """,
                    arguments: [endpoint, bounds.maximumKept])
            }
        }
    }

    public func dueNotificationDeliveries(now: Date, limit: Int, excluding: Set<String>) throws -> [StoredNotificationDelivery] {
        guard limit > 0 else { return [] }
        return try database.read { db in
            try StoredNotificationDelivery.filter(Column("state") == "pending" && Column("next_attempt_at") <= now)
                .filter(!excluding.contains(Column("id")))
                .order(Column("next_attempt_at"), Column("seq")).limit(limit).fetchAll(db)
        }
    }

    public func saveNotificationAttempt(_ delivery: StoredNotificationDelivery) throws {
        try database.write { db in
            // An endpoint deleted while its delivery was in flight: nothing to update.
            try db.execute(sql: Self.saveNotificationAttemptSQL, arguments: StatementArguments(delivery.attemptArguments()))
        }
    }

    /// Arguments: `StoredNotificationDelivery.attemptArguments()`.
    public static let saveNotificationAttemptSQL = """
        UPDATE notification_deliveries SET state = ?, attempts = ?, status_code = ?, error = ?, response_body = ?,
            duration_ms = ?, next_attempt_at = ?, last_attempt_at = ?, delivered_at = ?
        WHERE id = ? AND state = 'pending'
        """

    public func notificationDeliveries(endpointID: String, before: Int64?, limit: Int) throws -> [StoredNotificationDelivery] {
        try database.read { db in
            var request = StoredNotificationDelivery.filter(Column("endpoint_id") == endpointID)
            if let before { request = request.filter(Column("seq") < before) }
            return try request.order(Column("seq").desc).limit(limit).fetchAll(db)
        }
    }

    public func resealNotificationSecrets(
        _ reseal: (StoredNotificationEndpoint) throws -> StoredNotificationEndpoint
    ) throws -> Int {
        try database.write { db in
            let rows = try StoredNotificationEndpoint.fetchAll(db)
            for row in rows { try reseal(row).update(db) }
            return rows.count
        }
    }
}

extension StoredNotificationDelivery {
    /// The arguments of `SQLiteStore.saveNotificationAttemptSQL`, for both back ends.
    public func attemptArguments() -> [DatabaseValue] {
        let values: [(any DatabaseValueConvertible)?] = [
            state.rawValue, attempts, statusCode, error, responseBody, durationMs, nextAttemptAt, lastAttemptAt, deliveredAt, id,
        ]
        return values.map { $0?.databaseValue ?? .null }
    }
}
