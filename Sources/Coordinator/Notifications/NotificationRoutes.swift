import Foundation
import GantryProtocol
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// `POST/GET /v1/notifications`, `DELETE /v1/notifications/{id}`,
/// `GET /v1/notifications/{id}/deliveries`: outgoing webhooks. Creating one answers its
/// signing secret, once.
extension APIRouter {
    static let maximumNotificationBody = 16 * 1024
    /// Endpoints in all: each event is built and sent once per endpoint that wants it.
    static let maximumNotificationEndpoints = 100
    /// `GET /v1/notifications/{id}/deliveries`: the page size when none is given, and the most.
    static let defaultDeliveryLimit = 50
    static let maximumDeliveryLimit = 200
    static let maximumNotificationDescription = 200

    static func addNotificationRoutes(to router: Router<GantryRequestContext>, _ dependencies: Dependencies) {
        let core = dependencies.core
        let audit = dependencies.audit
        let store = core.store as? any NotificationStore
        let allowPrivate = dependencies.notificationAllowPrivate

        router.on(.createNotification, audit: audit) { request, context -> Response in
            guard let store else { return notificationsUnavailable() }
            let body: ByteBuffer
            switch await BoundedBody.collect(request, upTo: maximumNotificationBody, what: "the request body") {
            case .success(let collected): body = collected
            case .failure(let refusal): return refusal.response
            }
            let create: API.CreateNotification
            do {
                create = try API.decoder.decode(API.CreateNotification.self, from: Data(buffer: body))
            } catch {
                return APIResponses.error(
                    .badRequest, code: "bad_request",
                    message: "the body must be JSON like {\"url\": \"https://…\", \"events\": [\"pipeline.finished\"]}: \(error)")
            }
            do {
                _ = try NotificationURL.check(create.url, allowPrivate: allowPrivate)
            } catch let invalid as NotificationURL.Invalid {
                return APIResponses.error(.unprocessableContent, code: "invalid_notification", message: "url: \(invalid.description)")
            } catch {
                throw error
            }
            let events = Array(Set(create.events ?? [])).sorted()
            if let unknown = events.first(where: { NotificationEventType(rawValue: $0) == nil }) {
                return APIResponses.error(
                    .unprocessableContent, code: "invalid_notification",
                    message: "unknown event '\(unknown.logSafe(maximum: 64))': use "
                        + NotificationEventType.allCases.map(\.rawValue).joined(separator: ", "))
            }
            let description = create.description ?? ""
            guard description.utf8.count <= maximumNotificationDescription else {
                return APIResponses.error(
                    .unprocessableContent, code: "invalid_notification",
                    message: "description: at most \(maximumNotificationDescription) bytes")
            }
            if let project = create.project {
                guard let projects = core.store as? any ProjectStore, try projects.project(named: project) != nil else {
                    return APIResponses.error(
                        .unprocessableContent, code: "invalid_notification", message: "no project \(project.logSafe(maximum: 80))")
                }
            }
            let id = CoordinatorCore.newID()
            context.audit.set(object: "notification:\(id)")
            let (secret, sealed, keyID) = try core.secrets.newNotificationSecret(id: id)
            let row = StoredNotificationEndpoint(
                id: id, url: create.url, events: String(decoding: try JSONEncoder().encode(events), as: UTF8.self),
                project: create.project, description: description, sealedSecret: sealed, keyId: keyID,
                createdBy: context.principal?.identity ?? "", createdAt: Date())
            guard try store.insertNotificationEndpoint(row, limit: maximumNotificationEndpoints) else {
                return APIResponses.error(
                    .conflict, code: "limit", message: "at most \(maximumNotificationEndpoints) notification endpoints")
            }
            core.notificationInterest.update(from: try store.notificationEndpoints())
            context.audit.add("url", Self.redactedNotificationURL(create.url))
            context.audit.add("events", events.isEmpty ? "*" : events.joined(separator: ","))
            var view = Self.view(row)
            view.secret = secret
            return APIResponses.json(view, status: .created)
        }

        router.on(.listNotifications, audit: audit) { _, _ -> Response in
            guard let store else { return notificationsUnavailable() }
            return APIResponses.json(API.NotificationList(notifications: try store.notificationEndpoints().map(Self.view)))
        }

        router.on(.deleteNotification, audit: audit) { _, context -> Response in
            guard let store else { return notificationsUnavailable() }
            let id = try context.parameter("id")
            context.audit.set(object: "notification:\(id.logSafe(maximum: 80))")
            guard let row = try store.notificationEndpoint(id: id), try store.deleteNotificationEndpoint(id: id) else {
                return APIResponses.error(.notFound, code: "not_found", message: "no notification \(id.logSafe(maximum: 80))")
            }
            core.notificationInterest.update(from: try store.notificationEndpoints())
            return APIResponses.json(Self.view(row))
        }

        router.on(.listNotificationDeliveries, audit: audit) { request, context -> Response in
            guard let store else { return notificationsUnavailable() }
            let id = try context.parameter("id")
            guard try store.notificationEndpoint(id: id) != nil else {
                return APIResponses.error(.notFound, code: "not_found", message: "no notification \(id.logSafe(maximum: 80))")
            }
            var limit = defaultDeliveryLimit
            if let text = request.uri.queryParameters.get("limit") {
                guard let value = Int(text), (1...maximumDeliveryLimit).contains(value) else {
                    return APIResponses.error(.badRequest, code: "bad_request", message: "?limit= is 1 to \(maximumDeliveryLimit)")
                }
                limit = value
            }
            var before: Int64?
            if let text = request.uri.queryParameters.get("before") {
                guard let value = Int64(text), value > 0 else {
                    return APIResponses.error(.badRequest, code: "bad_request", message: "?before= is a cursor from `next`")
                }
                before = value
            }
            let rows = try store.notificationDeliveries(endpointID: id, before: before, limit: limit + 1)
            let page = rows.prefix(limit)
            let next = rows.count > limit ? page.last?.seq.map { String($0) } : nil
            return APIResponses.json(API.NotificationDeliveryList(deliveries: page.map(Self.view), next: next))
        }
    }

    static func view(_ row: StoredNotificationEndpoint) -> API.Notification {
        API.Notification(
            id: row.id, url: row.url, events: row.eventTypes, project: row.project, description: row.description,
            createdBy: row.createdBy, createdAt: row.createdAt)
    }

    static func view(_ row: StoredNotificationDelivery) -> API.NotificationDelivery {
        API.NotificationDelivery(
            id: row.id, event: row.event, state: row.state.rawValue, attempts: row.attempts, statusCode: row.statusCode,
            error: row.error, responseBody: row.responseBody, durationMs: row.durationMs, createdAt: row.createdAt,
            lastAttemptAt: row.lastAttemptAt, nextAttemptAt: row.nextAttemptAt, deliveredAt: row.deliveredAt)
    }

    /// Scheme, host and path only: a query may hold a receiver's token, and the audit log
    /// is read by more people than the endpoint list.
    static func redactedNotificationURL(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "?" }
        components.query = nil
        components.fragment = nil
        return (components.string ?? "?").logSafe(maximum: 200)
    }

    static func notificationsUnavailable() -> Response {
        APIResponses.error(.serviceUnavailable, code: "unavailable", message: "this coordinator keeps no notifications")
    }
}
