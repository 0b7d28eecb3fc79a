import AsyncHTTPClient
import Foundation
import GantryProtocol
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Sends outgoing webhooks: a service of `serve`, off the single writer.
///
/// Every quarter second it (1) fans out the events the core committed
/// (`notification_events`) into one delivery row per endpoint that wants the event, with
/// the payload built then, in one transaction that also deletes the events and keeps each
/// endpoint's outbox bounded (`NotificationOutbox`); and (2) starts the due deliveries, at
/// most `concurrency` in flight. Because deliveries are rows before anything is sent, a
/// restart loses none: a delivery in flight when the process died is sent again (at least
/// once; receivers dedupe by `X-Gantry-Delivery`).
public struct NotificationService: Service {
    let store: any NotificationStore
    let core: CoordinatorCore
    let allowPrivate: Bool
    let logger: Logger
    var backoff = NotificationBackoff()
    var bounds = NotificationOutbox()
    var interval: Duration = .milliseconds(250)

    /// Deliveries in flight at once: a few slow receivers (each up to `timeout`) must not
    /// hold up the others, and the coordinator must not open a socket per pending row.
    static let concurrency = 8
    static let timeout: TimeAmount = .seconds(10)
    /// Bytes of a receiver's response kept in the delivery log.
    static let keptResponseBytes = 4096
    /// Events fanned out per pass.
    static let eventsPerPass = 200

    public init(store: any NotificationStore, core: CoordinatorCore, allowPrivate: Bool, logger: Logger) {
        self.store = store
        self.core = core
        self.allowPrivate = allowPrivate
        self.logger = logger
    }

    public func run() async throws {
        var configuration = HTTPClient.Configuration()
        // Never follow a redirect: the URL was checked, wherever it points was not.
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: Self.timeout, read: Self.timeout)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let inFlight = InFlight()
        await cancelWhenGracefulShutdownOrError {
            await withDiscardingTaskGroup { group in
                while !Task.isCancelled {
                    // No endpoint, nothing to send (deleting one deletes its deliveries):
                    // an idle coordinator does not poll the database.
                    if self.core.notificationInterest.current.isEmpty {
                        try? await Task.sleep(for: self.interval)
                        continue
                    }
                    self.fanOut(now: Date())
                    let busy = inFlight.ids.withLock { $0 }
                    let due: [StoredNotificationDelivery]
                    do {
                        due = try self.store.dueNotificationDeliveries(
                            now: Date(), limit: Self.concurrency - busy.count, excluding: busy)
                    } catch {
                        self.logger.warning("could not read due notifications", metadata: ["error": "\(error)"])
                        due = []
                    }
                    for delivery in due {
                        inFlight.ids.withLock { _ = $0.insert(delivery.id) }
                        group.addTask {
                            await self.attempt(delivery, client: client)
                            inFlight.ids.withLock { _ = $0.remove(delivery.id) }
                        }
                    }
                    try? await Task.sleep(for: self.interval)
                }
            }
        }
        try? await client.shutdown()
    }

    /// The ids being sent, so a pass does not start a delivery twice.
    private final class InFlight: Sendable {
        let ids = Mutex<Set<String>>([])
    }

    private func cancelWhenGracefulShutdownOrError(_ body: @Sendable @escaping () async -> Void) async {
        await cancelWhenGracefulShutdown { await body() }
    }

    // MARK: - Fan-out

    /// Turns committed events into deliveries. Bounded: `eventsPerPass` events a pass.
    func fanOut(now: Date) {
        do {
            let events = try store.unprocessedNotificationEvents(limit: Self.eventsPerPass)
            guard !events.isEmpty else { return }
            let endpoints = try store.notificationEndpoints()
            let projects = core.store as? any ProjectStore
            var repositories: [String: String?] = [:]
            var deliveries: [StoredNotificationDelivery] = []
            var pipelines: [String: (StoredPipeline, [StoredJob])] = [:]
            for event in events {
                // Not what happened before an endpoint existed (events left over from a
                // deleted one, fanned out when the next is registered).
                let wanting = endpoints.filter { $0.wants(event.type) && $0.createdAt <= event.occurredAt }
                guard !wanting.isEmpty else { continue }
                let loaded: (StoredPipeline, [StoredJob])
                if let cached = pipelines[event.pipelineId] {
                    loaded = cached
                } else {
                    guard let pipeline = try core.store.pipeline(id: event.pipelineId) else { continue }
                    loaded = (pipeline, try core.store.jobs(pipelineID: event.pipelineId))
                    pipelines[event.pipelineId] = loaded
                }
                let payload = NotificationPayload.make(
                    event: event, eventID: CoordinatorCore.newID(), pipeline: loaded.0, jobs: loaded.1)
                let body = try API.encoder.encode(payload)
                for endpoint in wanting {
                    if let project = endpoint.project {
                        // The project filter matches the project's repository.
                        if repositories[project] == nil {
                            repositories[project] = .some(try projects?.project(named: project)?.repository)
                        }
                        guard let repository = repositories[project] ?? nil, repository == loaded.0.repository else { continue }
                    }
                    deliveries.append(
                        StoredNotificationDelivery(
                            id: CoordinatorCore.newID(), endpointId: endpoint.id, event: event.type, payload: body,
                            state: .pending, attempts: 0, createdAt: now, nextAttemptAt: now))
                }
            }
            try store.enqueueNotificationDeliveries(deliveries, processed: events.compactMap(\.id), bounds: bounds, now: now)
        } catch {
            logger.warning("could not fan out notification events", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Sending

    /// One attempt at one delivery, and its outcome saved.
    func attempt(_ delivery: StoredNotificationDelivery, client: HTTPClient) async {
        guard let endpoint = try? store.notificationEndpoint(id: delivery.endpointId) else { return }
        let started = ContinuousClock.now
        let startedAt = Date()
        var kept: String?
        let result: NotificationAttempt.Result
        do {
            let secret = try core.secrets.notificationSecret(of: endpoint)
            let components = try NotificationURL.check(endpoint.url, allowPrivate: allowPrivate)
            if !allowPrivate, let host = components.host,
                try await NIOThreadPool.singleton.runIfActive({ NotificationURL.resolvesPrivate(host: host) })
            {
                throw NotificationURL.Invalid(description: "\(host.logSafe(maximum: 80)) resolves to a private address: refused")
            }
            let body = Array(delivery.payload)
            let timestamp = Int64(Date().timeIntervalSince1970)
            var request = HTTPClientRequest(url: endpoint.url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "Gantry-Notifications/1")
            request.headers.add(name: NotificationSignature.eventHeader, value: delivery.event)
            request.headers.add(name: NotificationSignature.deliveryHeader, value: delivery.id)
            request.headers.add(name: NotificationSignature.timestampHeader, value: String(timestamp))
            request.headers.add(
                name: NotificationSignature.signatureHeader,
                value: NotificationSignature.sign(body: body, timestamp: timestamp, secret: secret))
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await client.execute(request, timeout: Self.timeout)
            var collected: [UInt8] = []
            for try await chunk in response.body {
                let room = Self.keptResponseBytes - collected.count
                if room > 0 { collected += chunk.readableBytesView.prefix(room) }
                if collected.count >= Self.keptResponseBytes { break }
            }
            kept = collected.isEmpty ? nil : String(decoding: collected, as: UTF8.self)
            result = .response(status: Int(response.status.code))
        } catch {
            result = .failure(String(describing: error).logSafe(maximum: 500))
        }
        let now = Date()
        var updated = delivery
        updated.attempts += 1
        updated.lastAttemptAt = startedAt
        updated.durationMs = Int((ContinuousClock.now - started).milliseconds)
        updated.responseBody = kept
        switch result {
        case .response(let status):
            updated.statusCode = status
            updated.error = (200..<300).contains(status) ? nil : "HTTP \(status)"
        case .failure(let error):
            updated.statusCode = nil
            updated.error = error
        }
        let next = NotificationAttempt.next(
            after: result, attempts: updated.attempts, now: now, backoff: backoff, jitter: Double.random(in: 0...1))
        switch next {
        case .delivered:
            updated.state = .delivered
            updated.deliveredAt = now
            updated.nextAttemptAt = nil
        case .retry(let at):
            updated.nextAttemptAt = at
        case .failed(let reason):
            updated.state = .failed
            updated.error = reason
            updated.nextAttemptAt = nil
        }
        core.metrics.recordNotificationAttempt(event: delivery.event, result: next)
        do {
            try store.saveNotificationAttempt(updated)
        } catch {
            logger.warning("could not record a notification attempt", metadata: ["delivery": "\(delivery.id)", "error": "\(error)"])
        }
    }
}
