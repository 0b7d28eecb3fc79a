import Foundation

/// Where the Notifications room keeps endpoints, events and deliveries. `SQLiteStore`
/// implements it (`SQLiteStore+Notifications`); events are written by the core's own
/// commit (`StoreWrite.notificationEvents`), everything else here.
public protocol NotificationStore: Sendable {
    /// False if `limit` endpoints exist already.
    func insertNotificationEndpoint(_ endpoint: StoredNotificationEndpoint, limit: Int) throws -> Bool
    func notificationEndpoints() throws -> [StoredNotificationEndpoint]
    func notificationEndpoint(id: String) throws -> StoredNotificationEndpoint?
    /// Deletes the endpoint and its deliveries.
    func deleteNotificationEndpoint(id: String) throws -> Bool

    /// Events not yet fanned out, oldest first.
    func unprocessedNotificationEvents(limit: Int) throws -> [StoredNotificationEvent]
    /// Inserts `deliveries` and marks `events` fanned out, in one transaction, keeping each
    /// endpoint's outbox within `NotificationOutbox`'s bounds.
    func enqueueNotificationDeliveries(
        _ deliveries: [StoredNotificationDelivery], processed events: [Int64], bounds: NotificationOutbox, now: Date) throws
    /// Pending deliveries due at `now`, oldest due first, not in `excluding`.
    func dueNotificationDeliveries(now: Date, limit: Int, excluding: Set<String>) throws -> [StoredNotificationDelivery]
    /// Writes an attempt's outcome: the state, attempts, status and error columns.
    func saveNotificationAttempt(_ delivery: StoredNotificationDelivery) throws
    /// One endpoint's deliveries newest first, before `seq` when given.
    func notificationDeliveries(endpointID: String, before: Int64?, limit: Int) throws -> [StoredNotificationDelivery]
    /// Key rotation: every endpoint's secret sealed again, in one transaction.
    func resealNotificationSecrets(_ reseal: (StoredNotificationEndpoint) throws -> StoredNotificationEndpoint) throws -> Int
}

/// How far an endpoint's outbox and delivery log may grow. A receiver that is down for
/// long must not make the coordinator's database grow without bound: past `maximumPending`
/// undelivered rows the oldest are marked `dropped` (with the reason, in the log), and
/// past `maximumKept` ended rows the oldest are deleted.
public struct NotificationOutbox: Sendable, Equatable {
    public var maximumPending = 1000
    public var maximumKept = 2000
    public init(maximumPending: Int = 1000, maximumKept: Int = 2000) {
        self.maximumPending = maximumPending
        self.maximumKept = maximumKept
    }

    public var droppedReason: String {
        "dropped: the endpoint had \(maximumPending) undelivered notifications (outbox full)"
    }
}
