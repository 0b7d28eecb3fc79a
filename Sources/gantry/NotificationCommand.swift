import ArgumentParser
import Foundation
import GantryProtocol

/// `gantry notification add|list|delete|deliveries`: outgoing webhooks (admin).
struct NotificationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notification", abstract: "Register outgoing webhooks for pipeline and deployment events (admin).",
        subcommands: [Add.self, List.self, Delete.self, Deliveries.self])

    static func describe(_ notification: API.Notification) -> String {
        let events = notification.events.isEmpty ? "all events" : notification.events.joined(separator: ",")
        var line = "\(notification.id)  \(notification.url)  \(events)"
        if let project = notification.project { line += "  project \(project)" }
        if !notification.description.isEmpty { line += "  (\(notification.description))" }
        return line
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "POST signed JSON to a URL when pipelines or deployments start or finish.",
            discussion: """
                Events: pipeline.started, pipeline.finished, job.finished, deployment.finished (repeat --event; all when
                none). The signing secret is printed once: each request carries X-Gantry-Timestamp and
                X-Gantry-Signature-256: sha256=HMAC-SHA256(secret, "TIMESTAMP.BODY") (docs/security.md). Example:
                  gantry notification add https://chat.example.com/hooks/ci --event pipeline.finished
                """)
        @Argument(help: "The http:// or https:// URL to POST to.") var url: String
        @Option(name: .customLong("event"), help: "An event type to send (repeatable).") var events: [String] = []
        @Option(help: "Only pipelines of this project's repository.") var project: String?
        @Option(help: "A note shown by `list`.") var description: String?
        @OptionGroup var connection: Connection

        func run() async throws {
            let client = try connection.client()
            defer { client.shutdown() }
            let created: API.Notification = try await client.send(
                "POST", APIRoute.createNotification.path,
                body: API.CreateNotification(url: url, events: events, project: project, description: description))
            if connection.json {
                print(String(decoding: try API.encoder.encode(created), as: UTF8.self))
            } else {
                print(NotificationCommand.describe(created))
                print("secret (shown once; verify X-Gantry-Signature-256 with it): \(created.secret ?? "")")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the registered endpoints.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let client = try connection.client()
            defer { client.shutdown() }
            let list: API.NotificationList = try await client.send("GET", APIRoute.listNotifications.path)
            if connection.json {
                print(String(decoding: try API.encoder.encode(list), as: UTF8.self))
            } else {
                print(list.notifications.isEmpty ? "no notifications" : list.notifications.map(NotificationCommand.describe).joined(separator: "\n"))
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an endpoint and its delivery log.")
        @Argument(help: "Notification id.") var id: String
        @OptionGroup var connection: Connection

        func run() async throws {
            let client = try connection.client()
            defer { client.shutdown() }
            let deleted: API.Notification = try await client.send(
                "DELETE", APIRoute.deleteNotification.path(["id": id]), body: Optional<API.CreateNotification>.none)
            print(connection.json ? String(decoding: try API.encoder.encode(deleted), as: UTF8.self) : "notification \(deleted.id) deleted")
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an endpoint's delivery log, newest first.")
        @Argument(help: "Notification id.") var id: String
        @Option(help: "Deliveries per page (1 to 200).") var limit: Int = 50
        @Option(help: "The `next` cursor of an earlier page.") var before: String?
        @OptionGroup var connection: Connection

        func run() async throws {
            let client = try connection.client()
            defer { client.shutdown() }
            var path = APIRoute.listNotificationDeliveries.path(["id": id]) + "?limit=\(limit)"
            if let before { path += "&before=\(APIRoute.percentEncodeQuery(before))" }
            let list: API.NotificationDeliveryList = try await client.send("GET", path)
            if connection.json {
                print(String(decoding: try API.encoder.encode(list), as: UTF8.self))
                return
            }
            if list.deliveries.isEmpty { print("no deliveries") }
            for delivery in list.deliveries {
                var line = "\(delivery.id)  \(delivery.event)  \(delivery.state)  attempts \(delivery.attempts)"
                if let status = delivery.statusCode { line += "  HTTP \(status)" }
                if let duration = delivery.durationMs { line += "  \(duration) ms" }
                if let error = delivery.error, delivery.state != "delivered" { line += "  \(error)" }
                print(line)
            }
            if let next = list.next { print("more: --before \(next)") }
        }
    }
}
