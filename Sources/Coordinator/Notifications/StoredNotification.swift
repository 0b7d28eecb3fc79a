import Foundation
import GRDB

/// A registered endpoint (`notification_endpoints`). Its secret is sealed under the
/// secrets key (`SecretVault+Notifications`), like a project's webhook secret.
public struct StoredNotificationEndpoint: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "notification_endpoints"

    public var id: String
    public var url: String
    /// JSON array of event types; empty means every type.
    public var events: String
    public var project: String?
    public var description: String
    public var sealedSecret: Data
    public var keyId: String
    public var createdBy: String
    public var createdAt: Date

    public var eventTypes: [String] { (try? JSONDecoder().decode([String].self, from: Data(events.utf8))) ?? [] }

    /// Whether this endpoint wants events of `type`.
    func wants(_ type: String) -> Bool {
        let types = eventTypes
        return types.isEmpty || types.contains(type)
    }

    static func secretName(_ id: String) -> String { "notification:\(id)" }

    enum CodingKeys: String, CodingKey {
        case id, url, events, project, description
        case sealedSecret = "sealed_secret"
        case keyId = "key_id"
        case createdBy = "created_by"
        case createdAt = "created_at"
    }
}

/// Something that happened, written in the same transaction as the state change that
/// made it happen (`notification_events`), then fanned out to the endpoints that want it
/// by `NotificationService`, off the single writer.
public struct StoredNotificationEvent: Codable, FetchableRecord, MutablePersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "notification_events"

    public var id: Int64?
    public var type: String
    public var pipelineId: String
    public var jobId: String?
    public var occurredAt: Date

    public init(type: NotificationEventType, pipelineId: String, jobId: String? = nil, occurredAt: Date) {
        self.type = type.rawValue
        self.pipelineId = pipelineId
        self.jobId = jobId
        self.occurredAt = occurredAt
    }

    enum CodingKeys: String, CodingKey {
        case id, type
        case pipelineId = "pipeline_id"
        case jobId = "job_id"
        case occurredAt = "occurred_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// One event's delivery to one endpoint (`notification_deliveries`): the outbox row the
/// sender works from and, once it ends, the delivery log the API shows.
public struct StoredNotificationDelivery: Codable, FetchableRecord, MutablePersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "notification_deliveries"

    public enum State: String, Codable, Sendable, CaseIterable {
        case pending, delivered, failed, dropped
    }

    /// Insertion order: the cursor of the delivery log.
    public var seq: Int64?
    public var id: String
    public var endpointId: String
    public var event: String
    /// The JSON body, the same bytes on every attempt.
    public var payload: Data
    public var state: State
    public var attempts: Int
    public var statusCode: Int?
    public var error: String?
    public var responseBody: String?
    public var durationMs: Int?
    public var createdAt: Date
    public var nextAttemptAt: Date?
    public var lastAttemptAt: Date?
    public var deliveredAt: Date?

    enum CodingKeys: String, CodingKey {
        case seq, id, event, payload, state, attempts, error
        case endpointId = "endpoint_id"
        case statusCode = "status_code"
        case responseBody = "response_body"
        case durationMs = "duration_ms"
        case createdAt = "created_at"
        case nextAttemptAt = "next_attempt_at"
        case lastAttemptAt = "last_attempt_at"
        case deliveredAt = "delivered_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { seq = inserted.rowID }
}
