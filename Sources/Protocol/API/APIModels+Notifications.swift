import Foundation

extension API {
    /// `POST /v1/notifications`: an endpoint that receives signed webhooks for some events.
    public struct CreateNotification: Codable, Sendable, Equatable {
        /// `http://` or `https://`, at most 2048 bytes.
        public var url: String
        /// Event types (`pipeline.started`, `pipeline.finished`, `job.finished`,
        /// `deployment.finished`); every type when nil or empty.
        public var events: [String]?
        /// Only pipelines of this project (`project:NAME` sources); every pipeline when nil.
        public var project: String?
        /// A note for `gantry notification list`.
        public var description: String?

        public init(url: String, events: [String]? = nil, project: String? = nil, description: String? = nil) {
            self.url = url
            self.events = events
            self.project = project
            self.description = description
        }
    }

    /// A registered endpoint. `secret` is in the answer to its creation only: the
    /// coordinator keeps it sealed and never shows it again.
    public struct Notification: Codable, Sendable, Equatable {
        public var id: String
        public var url: String
        public var events: [String]
        public var project: String?
        public var description: String
        public var createdBy: String
        public var createdAt: Date
        public var secret: String?

        public init(
            id: String, url: String, events: [String], project: String?, description: String, createdBy: String,
            createdAt: Date, secret: String? = nil
        ) {
            self.id = id
            self.url = url
            self.events = events
            self.project = project
            self.description = description
            self.createdBy = createdBy
            self.createdAt = createdAt
            self.secret = secret
        }
    }

    public struct NotificationList: Codable, Sendable, Equatable {
        public var notifications: [Notification]
        public init(notifications: [Notification]) { self.notifications = notifications }
    }

    /// One delivery of one event to one endpoint, with how its attempts went.
    public struct NotificationDelivery: Codable, Sendable, Equatable {
        /// The `X-Gantry-Delivery` header: unique, the same on every attempt.
        public var id: String
        public var event: String
        /// `pending` (waiting for its next attempt), `delivered`, `failed` (every attempt
        /// used), `dropped` (the outbox of a long-unreachable endpoint overflowed).
        public var state: String
        public var attempts: Int
        /// The HTTP status of the last attempt; nil if it got no response.
        public var statusCode: Int?
        public var error: String?
        /// The start of the receiver's last response body, at most 4 KiB.
        public var responseBody: String?
        /// Milliseconds the last attempt took.
        public var durationMs: Int?
        public var createdAt: Date
        public var lastAttemptAt: Date?
        public var nextAttemptAt: Date?
        public var deliveredAt: Date?

        public init(
            id: String, event: String, state: String, attempts: Int, statusCode: Int?, error: String?, responseBody: String?,
            durationMs: Int?, createdAt: Date, lastAttemptAt: Date?, nextAttemptAt: Date?, deliveredAt: Date?
        ) {
            self.id = id
            self.event = event
            self.state = state
            self.attempts = attempts
            self.statusCode = statusCode
            self.error = error
            self.responseBody = responseBody
            self.durationMs = durationMs
            self.createdAt = createdAt
            self.lastAttemptAt = lastAttemptAt
            self.nextAttemptAt = nextAttemptAt
            self.deliveredAt = deliveredAt
        }
    }

    /// `GET /v1/notifications/{id}/deliveries[?limit=&before=]`: newest first; `next` is
    /// the `before` of the following page, nil on the last.
    public struct NotificationDeliveryList: Codable, Sendable, Equatable {
        public var deliveries: [NotificationDelivery]
        public var next: String?
        public init(deliveries: [NotificationDelivery], next: String?) {
            self.deliveries = deliveries
            self.next = next
        }
    }
}
