import Crypto
import Foundation
import GantryProtocol
import NIOHTTP1
import Testing

/// Outgoing webhooks with the real binaries: an endpoint registered with the CLI, a
/// pipeline run by a real agent, a signed `pipeline.finished` that reaches a receiver on
/// 127.0.0.1 after a first 500, the retry visible in the delivery log, and the new
/// histograms in `/metrics`.
@Suite("Notifications", .timeLimit(.minutes(5)))
struct NotificationTests {
    static func hmac(_ material: [UInt8], _ secret: String) -> String {
        "sha256=" + HMAC<SHA256>.authenticationCode(for: material, using: SymmetricKey(data: Array(secret.utf8)))
            .map { String(format: "%02x", $0) }.joined()
    }

    @Test func aSignedPipelineFinishedArrivesAfterARetryAndIsInTheDeliveryLog() async throws {
        let receiver = try await NotificationReceiver(answering: [500])
        try await TestCluster.with("notifications", coordinatorArguments: ["--notification-allow-private"]) { cluster in
            try await cluster.startAgent(slot: "1")

            // Hostile input is refused before anything is stored.
            let (refused, refusal) = try await cluster.request(
                .POST, "/v1/notifications", body: Data(#"{"url": "file:///etc/passwd"}"#.utf8))
            #expect(refused == 422, "\(String(decoding: refusal, as: UTF8.self))")
            let (unknown, _) = try await cluster.request(
                .POST, "/v1/notifications", body: Data(#"{"url": "http://127.0.0.1:1/", "events": ["pipeline.exploded"]}"#.utf8))
            #expect(unknown == 422)

            let (added, output) = try await WebhookTests.gantry(
                cluster, ["notification", "add", receiver.url, "--event", "pipeline.finished", "--description", "chat", "--json"])
            #expect(added, "\(output)")
            let notification = try API.decoder.decode(API.Notification.self, from: Data(output.utf8))
            let secret = try #require(notification.secret)
            #expect(secret.hasPrefix("gns_") && notification.events == ["pipeline.finished"])
            let (listed, listing) = try await WebhookTests.gantry(cluster, ["notification", "list"])
            #expect(listed && listing.contains(notification.id) && !listing.contains(secret), "\(listing)")

            let pipeline = try await cluster.submit("steps:\n  - key: hello\n    command: echo hello\n")
            let finished = try await cluster.waitForPipeline(pipeline.id)
            #expect(finished.state == "succeeded")

            // The receiver answers 500 first: the same delivery comes again, after the backoff.
            try await waitUntil("two attempts at the receiver", timeout: .seconds(60)) { receiver.received.count >= 2 }
            let attempts = receiver.received
            #expect(attempts.count == 2, "only pipeline.finished was subscribed to")
            for request in attempts {
                #expect(request.headers["x-gantry-event"] == "pipeline.finished")
                #expect(request.headers["content-type"] == "application/json")
                let timestamp = try #require(request.headers["x-gantry-timestamp"].flatMap { Int64($0) })
                #expect(abs(timestamp - Int64(Date().timeIntervalSince1970)) < 300)
                #expect(request.headers["x-gantry-signature-256"] == Self.hmac(Array("\(timestamp).".utf8) + request.body, secret))
                #expect(request.headers["x-gantry-signature-256"] != Self.hmac(request.body, secret), "the timestamp is signed")
                let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
                #expect(body["event"] as? String == "pipeline.finished")
                let summary = try #require(body["pipeline"] as? [String: Any])
                #expect(summary["id"] as? String == pipeline.id && summary["state"] as? String == "succeeded")
            }
            let deliveryID = try #require(attempts[0].headers["x-gantry-delivery"])
            #expect(attempts[1].headers["x-gantry-delivery"] == deliveryID, "a retry is the same delivery")
            #expect(attempts[0].body == attempts[1].body, "a retry sends the same bytes")

            // The delivery log: delivered on the second attempt.
            var log: API.NotificationDeliveryList?
            try await waitUntil("the delivery recorded as delivered", timeout: .seconds(30)) {
                let (_, data) = try await cluster.request(.GET, "/v1/notifications/\(notification.id)/deliveries?limit=10")
                log = try API.decoder.decode(API.NotificationDeliveryList.self, from: data)
                return log?.deliveries.first?.state == "delivered"
            }
            let delivery = try #require(log?.deliveries.first)
            #expect(log?.deliveries.count == 1)
            #expect(delivery.id == deliveryID && delivery.attempts == 2 && delivery.statusCode == 200)
            #expect(delivery.event == "pipeline.finished" && delivery.responseBody == "ok" && delivery.deliveredAt != nil)
            let (shown, deliveries) = try await WebhookTests.gantry(cluster, ["notification", "deliveries", notification.id])
            #expect(shown && deliveries.contains("delivered") && deliveries.contains("attempts 2"), "\(deliveries)")

            // A viewer may not read the log: it holds the receiver's answers.
            let viewer = try await AuthorizationTests.hostToken(cluster, identity: "watcher", role: "viewer")
            let (forbidden, _) = try await cluster.request(.GET, "/v1/notifications", token: viewer)
            #expect(forbidden == 403)

            // The job's duration and the API's latency are in /metrics.
            let (_, metrics) = try await cluster.request(.GET, "/metrics")
            let text = String(decoding: metrics, as: UTF8.self)
            for series in [
                "gantry_job_duration_seconds_bucket{", "gantry_step_duration_seconds_bucket{step=\"hello\"",
                "gantry_job_start_wait_seconds_count", "gantry_jobs_finished_total{outcome=\"passed\"",
                "gantry_log_bytes_received_total", "gantry_api_request_duration_seconds_bucket{route=\"submitPipeline\",status=\"2xx\"",
                "gantry_notification_attempts_total{event=\"pipeline.finished\",result=\"retry\"}",
            ] {
                #expect(text.contains(series), "no \(series) in /metrics")
            }
            #expect(!text.contains(pipeline.id), "no raw path (or id) as a label value")

            let (deleted, _) = try await WebhookTests.gantry(cluster, ["notification", "delete", notification.id])
            #expect(deleted)
            let (_, after) = try await cluster.request(.GET, "/v1/notifications")
            #expect(try API.decoder.decode(API.NotificationList.self, from: after).notifications.isEmpty)
        }
        await receiver.stop()
    }

    /// Every event type reaches the receiver, and deliveries that failed before a
    /// `kill -9` of the coordinator are delivered by the next process: the outbox is rows,
    /// not memory.
    @Test func everyEventArrivesAndNoneIsLostAcrossACoordinatorKill() async throws {
        let receiver = try await NotificationReceiver(answering: [])
        receiver.answer(503)
        let arguments = ["--notification-allow-private", "--allow-untrusted-environment-steps"]
        try await TestCluster.with("notifications-restart", coordinatorArguments: arguments) { cluster in
            try await cluster.startAgent(slot: "1")
            let (added, output) = try await WebhookTests.gantry(cluster, ["notification", "add", receiver.url, "--json"])
            #expect(added, "\(output)")
            let notification = try API.decoder.decode(API.Notification.self, from: Data(output.utf8))
            let secret = try #require(notification.secret)
            #expect(notification.events.isEmpty, "no --event: every event")

            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: build
                    command: echo build
                  - key: deploy
                    environment: staging
                    depends_on: build
                    command: echo deploy
                """)
            #expect(try await cluster.waitForPipeline(pipeline.id).state == "succeeded")
            // pipeline.started, job.finished twice, deployment.finished, pipeline.finished:
            // each tried once and refused.
            let expected = ["deployment.finished", "job.finished", "job.finished", "pipeline.finished", "pipeline.started"]
            func deliveries() -> Set<String> { Set(receiver.received.compactMap { $0.headers["x-gantry-delivery"] }) }
            try await waitUntil("a first attempt at each event", timeout: .seconds(60)) { deliveries().count >= expected.count }

            try await cluster.killCoordinator()
            receiver.answer(200)
            try await cluster.startCoordinator(extraArguments: arguments)

            var delivered: [NotificationReceiver.Received] = []
            try await waitUntil("every delivery to succeed after the restart", timeout: .seconds(120)) {
                delivered = receiver.received.filter { $0.status == 200 }
                return Set(delivered.compactMap { $0.headers["x-gantry-delivery"] }).count >= expected.count
            }
            #expect(deliveries().count == expected.count, "no event twice under another delivery id, none new")
            var events: [String] = []
            for id in Set(delivered.compactMap { $0.headers["x-gantry-delivery"] }) {
                let request = try #require(delivered.first { $0.headers["x-gantry-delivery"] == id })
                events.append(request.headers["x-gantry-event"] ?? "")
                let timestamp = try #require(request.headers["x-gantry-timestamp"].flatMap { Int64($0) })
                #expect(request.headers["x-gantry-signature-256"] == Self.hmac(Array("\(timestamp).".utf8) + request.body, secret))
                if request.headers["x-gantry-event"] == "deployment.finished" {
                    let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
                    let deployment = try #require(body["deployment"] as? [String: Any])
                    #expect(deployment["environment"] as? String == "staging" && deployment["state"] as? String == "succeeded")
                    #expect((body["job"] as? [String: Any])?["key"] as? String == "deploy")
                }
            }
            #expect(events.sorted() == expected)
            // The log catches up once each answer is recorded; then page through it.
            var all: [API.NotificationDelivery] = []
            var pages = 0
            try await waitUntil("the log to show every delivery delivered", timeout: .seconds(30)) {
                all = []
                pages = 0
                var cursor: String?
                repeat {
                    let query = "limit=2" + (cursor.map { "&before=\($0)" } ?? "")
                    let (_, data) = try await cluster.request(.GET, "/v1/notifications/\(notification.id)/deliveries?\(query)")
                    let page = try API.decoder.decode(API.NotificationDeliveryList.self, from: data)
                    all += page.deliveries
                    cursor = page.next
                    pages += 1
                } while cursor != nil && pages < 10
                return all.count == expected.count && all.allSatisfy { $0.state == "delivered" }
            }
            #expect(pages == 3, "5 deliveries, 2 a page")
            // Each was refused before the kill and sent again after it. (The log may count one
            // attempt fewer: an answer that arrived as the process died was never recorded.)
            for id in deliveries() {
                let tries = receiver.received.filter { $0.headers["x-gantry-delivery"] == id }
                #expect(tries.count >= 2 && tries.first?.status == 503 && tries.last?.status == 200, "\(id)")
            }
        }
        await receiver.stop()
    }

    @Test func privateTargetsAreRefusedWithoutTheFlag() async throws {
        try await TestCluster.with("notifications-private") { cluster in
            for url in ["http://127.0.0.1:9/", "http://169.254.169.254/latest/meta-data", "http://localhost:8080/"] {
                let (status, data) = try await cluster.request(
                    .POST, "/v1/notifications", body: try API.encoder.encode(API.CreateNotification(url: url)))
                #expect(status == 422 && String(decoding: data, as: UTF8.self).contains("--notification-allow-private"), "\(url)")
            }
        }
    }
}
