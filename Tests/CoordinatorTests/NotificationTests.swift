import Crypto
import Foundation
@testable import GantryCoordinator
import GantryPostgresStore
import GantryProtocol
import Logging
import Synchronization
import Testing

/// The Notifications room without sockets: the signature scheme, the retry schedule, the
/// attempt state machine, URL rules, which commits produce which events, and the
/// outbox's bounds in a real store.
@Suite("Notifications")
struct NotificationTests {
    // MARK: Signature

    @Test func theSignatureIsHMACSHA256OfTimestampDotBody() {
        let body = Array(#"{"event":"pipeline.finished"}"#.utf8)
        let signature = NotificationSignature.sign(body: body, timestamp: 1_700_000_000, secret: "gns_secret")
        // Computed independently, as a receiver would.
        let expected = HMAC<SHA256>.authenticationCode(
            for: Array("1700000000.".utf8) + body, using: SymmetricKey(data: Array("gns_secret".utf8)))
        #expect(signature == "sha256=" + expected.map { String(format: "%02x", $0) }.joined())
        #expect(signature.count == "sha256=".count + 64)
    }

    @Test func verificationRefusesATamperedBodyAnotherSecretAndAnOldTimestamp() {
        let body = Array("hello".utf8)
        let signature = NotificationSignature.sign(body: body, timestamp: 1000, secret: "s")
        #expect(NotificationSignature.verify(body: body, timestamp: 1000, signature: signature, secret: "s", now: 1100))
        #expect(!NotificationSignature.verify(body: Array("hellO".utf8), timestamp: 1000, signature: signature, secret: "s", now: 1000))
        #expect(!NotificationSignature.verify(body: body, timestamp: 1000, signature: signature, secret: "t", now: 1000))
        // A replay: the same request, later than the tolerance.
        #expect(!NotificationSignature.verify(body: body, timestamp: 1000, signature: signature, secret: "s", now: 1301))
        // The timestamp is signed: moving it forward breaks the signature.
        #expect(!NotificationSignature.verify(body: body, timestamp: 1300, signature: signature, secret: "s", now: 1300))
    }

    // MARK: Backoff and attempts

    @Test func theBackoffDoublesFromFourSecondsWithinItsCap() {
        let backoff = NotificationBackoff()
        #expect((1...8).map { backoff.ceiling(afterAttempt: $0) } == [4, 8, 16, 32, 64, 128, 256, 512])
        #expect(NotificationBackoff(base: 4, cap: 60).ceiling(afterAttempt: 10) == 60)
        #expect(backoff.ceiling(afterAttempt: 1000) == 1800, "no overflow for absurd attempt numbers")
        // Equal jitter: between half and all of the ceiling.
        #expect(backoff.delay(afterAttempt: 3, jitter: 0) == 8)
        #expect(backoff.delay(afterAttempt: 3, jitter: 1) == 16)
        #expect(backoff.delay(afterAttempt: 3, jitter: 0.5) == 12)
        #expect(backoff.delay(afterAttempt: 3, jitter: 7) == 16, "jitter is clamped")
    }

    @Test func a2xxIsDeliveredAnythingElseIsRetriedUntilTheAttemptsAreUsed() {
        let now = Date(timeIntervalSince1970: 1_000_000)
        let backoff = NotificationBackoff()
        for status in [200, 201, 204, 299] {
            #expect(NotificationAttempt.next(after: .response(status: status), attempts: 1, now: now, backoff: backoff, jitter: 0) == .delivered)
        }
        for result in [NotificationAttempt.Result.response(status: 500), .response(status: 302), .response(status: 410), .failure("timeout")] {
            #expect(NotificationAttempt.next(after: result, attempts: 1, now: now, backoff: backoff, jitter: 0) == .retry(at: now + 2))
            #expect(NotificationAttempt.next(after: result, attempts: 7, now: now, backoff: backoff, jitter: 1) == .retry(at: now + 256))
            guard case .failed(let reason) = NotificationAttempt.next(after: result, attempts: 8, now: now, backoff: backoff, jitter: 0)
            else {
                Issue.record("the eighth failure must give up")
                continue
            }
            #expect(reason.hasPrefix("gave up after 8 attempts"))
        }
        // Delivered on the last attempt is still delivered.
        #expect(NotificationAttempt.next(after: .response(status: 200), attempts: 8, now: now, backoff: backoff, jitter: 0) == .delivered)
    }

    // MARK: URLs

    @Test func urlsAreHTTPOnlyBoundedAndPrivateTargetsNeedTheFlag() throws {
        #expect(throws: NotificationURL.Invalid.self) { try NotificationURL.check("ftp://example.com/x", allowPrivate: true) }
        #expect(throws: NotificationURL.Invalid.self) { try NotificationURL.check("file:///etc/passwd", allowPrivate: true) }
        #expect(throws: NotificationURL.Invalid.self) { try NotificationURL.check("https://user:pw@example.com/", allowPrivate: true) }
        #expect(throws: NotificationURL.Invalid.self) { try NotificationURL.check("https://exa mple.com/", allowPrivate: true) }
        #expect(throws: NotificationURL.Invalid.self) {
            try NotificationURL.check("https://example.com/" + String(repeating: "a", count: 2100), allowPrivate: true)
        }
        _ = try NotificationURL.check("https://hooks.example.com/ci?token=x", allowPrivate: false)
        for url in [
            "http://127.0.0.1:8080/", "http://localhost/", "http://10.1.2.3/", "http://192.168.0.1/", "http://172.20.0.1/",
            "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[fd00::1]/", "http://0.0.0.0/",
        ] {
            #expect(throws: NotificationURL.Invalid.self, "\(url)") { try NotificationURL.check(url, allowPrivate: false) }
            _ = try NotificationURL.check(url, allowPrivate: true)
        }
        #expect(!NotificationURL.isPrivate(host: "172.32.0.1"))
        #expect(!NotificationURL.isPrivate(host: "8.8.8.8"))
    }

    // MARK: Events

    @Test func eventsComeFromTheCommitAndAPipelineFinishesOnceWhenItsLastJobEnds() {
        let pipeline = Fixture.pipeline("p1", at: Fixture.t0)
        var build = Fixture.job("j1", pipeline: pipeline, position: 0, state: .queued)
        var deploy = Fixture.job("j2", pipeline: pipeline, position: 1, state: .queued)
        deploy.environment = "production"
        let all = Set(NotificationEventType.allCases)
        let started = NotificationEvents.scan(
            StoreBatch([.insertPipeline(pipeline, jobs: [build, deploy])]), wanted: all, now: Fixture.t0) { _ in false }
        #expect(started.map(\.type) == ["pipeline.started"])

        build.state = .succeeded
        deploy.state = .failed
        let ended = NotificationEvents.scan(
            StoreBatch([.updateJob(build), .updateJob(deploy), .updateJob(deploy)]), wanted: all, now: Fixture.t0) { _ in true }
        #expect(ended.filter { $0.type == "pipeline.finished" }.count == 1, "once per batch however many jobs end")
        #expect(ended.filter { $0.type == "job.finished" }.map(\.jobId) == ["j1", "j2", "j2"])
        #expect(ended.filter { $0.type == "deployment.finished" }.map(\.jobId) == ["j2", "j2"])

        // Still running elsewhere: no pipeline.finished; nobody listening: nothing at all.
        #expect(NotificationEvents.scan(StoreBatch([.updateJob(build)]), wanted: [.pipelineFinished], now: Fixture.t0) { _ in false }.isEmpty)
        #expect(NotificationEvents.scan(StoreBatch([.updateJob(build)]), wanted: [], now: Fixture.t0) { _ in true }.isEmpty)
        // A job still running is no event.
        var running = build
        running.state = .running
        #expect(NotificationEvents.scan(StoreBatch([.updateJob(running)]), wanted: all, now: Fixture.t0) { _ in true }.isEmpty)
    }

    // MARK: Metrics helpers

    @Test func labelValuesAreCappedAndSanitized() {
        let labels = BoundedLabelValues(maximum: 3)
        #expect(["a", "b", "c", "d", "a"].map(labels.label) == ["a", "b", "c", "other", "a"])
        #expect(BoundedLabelValues.sanitized("os=linux,arch=arm64") == "os=linux,arch=arm64")
        #expect(BoundedLabelValues.sanitized("a\"b\\c\nd") == "a_b_c_d")
        #expect(BoundedLabelValues.sanitized(String(repeating: "x", count: 500)).count == 128)
    }

    @Test func requestsAreLabelledByRouteNeverByPath() {
        let matcher = APIRouteMatcher()
        #expect(matcher.match(method: "GET", path: "/v1/pipelines/abc") == .getPipeline)
        #expect(matcher.match(method: "POST", path: "/v1/pipelines/abc/cancel") == .cancelPipeline)
        #expect(matcher.match(method: "GET", path: "/v1/pipelines") == .listPipelines)
        #expect(matcher.match(method: "POST", path: "/v1/pipelines") == .submitPipeline)
        #expect(matcher.match(method: "GET", path: "/v1/notifications/x/deliveries") == .listNotificationDeliveries)
        #expect(matcher.match(method: "GET", path: "/metrics") == .metrics)
        #expect(matcher.match(method: "GET", path: "/v1/nothing/here") == nil)
        for route in APIRoute.allCases {
            let path = route.path(["id": "i", "name": "n", "host": "h", "slot": "1", "key": "k", "digest": "d"])
            #expect(matcher.match(method: route.method, path: path) == route, "\(route)")
        }
    }

    @Test func endedJobsAndLogChunksBecomeSeriesWithCappedStepLabels() {
        let metrics = CoordinatorMetrics()
        let pipeline = Fixture.pipeline("p1", at: Fixture.t0)
        var writes: [StoreWrite] = [.appendLog(Fixture.chunk("j0", attempt: 1, offset: 0, text: "hello\n"))]
        for n in 0...200 {
            var job = Fixture.job("j\(n)", pipeline: pipeline, position: n, state: .succeeded)
            job.key = "step-\(n)"
            job.startedAt = Fixture.t0.addingTimeInterval(2)
            job.finishedAt = Fixture.t0.addingTimeInterval(12)
            writes.append(.updateJob(job))
        }
        var running = Fixture.job("r", pipeline: pipeline, position: 999, state: .running)
        running.startedAt = Fixture.t0
        writes.append(.updateJob(running))
        metrics.observe(committed: StoreBatch(writes))
        let text = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
        #expect(text.contains(#"gantry_step_duration_seconds_count{step="step-0",outcome="passed"} 1"#))
        #expect(text.contains(#"gantry_step_duration_seconds_count{step="other",outcome="passed"} 1"#), "the 201st key")
        #expect(text.contains(#"gantry_job_duration_seconds_count{outcome="passed",labels="os=linux"} 201"#))
        #expect(text.contains(#"gantry_jobs_finished_total{outcome="passed",state="succeeded"} 201"#), "a running job is not counted")
        #expect(text.contains("gantry_log_bytes_received_total 6"))
        #expect(text.contains("gantry_job_start_wait_seconds_count"))
    }

    // MARK: Store

    @Test(arguments: StoreFactory.all)
    func theOutboxDropsTheOldestPendingPastItsBoundAndKeepsTheLogBounded(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any NotificationStore)
        let endpoint = StoredNotificationEndpoint(
            id: "e1", url: "https://example.com/", events: "[]", project: nil, description: "", sealedSecret: Data([1]),
            keyId: "k", createdBy: "admin", createdAt: Fixture.t0)
        #expect(try store.insertNotificationEndpoint(endpoint, limit: 1))
        #expect(try !store.insertNotificationEndpoint(endpoint, limit: 1), "the endpoint limit")

        // Events written by a lifecycle commit are there to fan out, then gone.
        try scratch.store.commit(
            StoreBatch([.notificationEvents([StoredNotificationEvent(type: .pipelineFinished, pipelineId: "p", occurredAt: Fixture.t0)])]))
        let events = try store.unprocessedNotificationEvents(limit: 10)
        #expect(events.map(\.type) == ["pipeline.finished"])

        let bounds = NotificationOutbox(maximumPending: 3, maximumKept: 2)
        func delivery(_ n: Int) -> StoredNotificationDelivery {
            StoredNotificationDelivery(
                id: "d\(n)", endpointId: "e1", event: "pipeline.finished", payload: Data("{}".utf8), state: .pending, attempts: 0,
                createdAt: Fixture.t0, nextAttemptAt: Fixture.t0)
        }
        try store.enqueueNotificationDeliveries((1...5).map(delivery), processed: events.compactMap(\.id), bounds: bounds, now: Fixture.t0)
        #expect(try store.unprocessedNotificationEvents(limit: 10).isEmpty)
        let due = try store.dueNotificationDeliveries(now: Fixture.t0, limit: 10, excluding: ["d5"])
        #expect(due.map(\.id) == ["d3", "d4"], "the oldest two dropped, d5 in flight")
        let log = try store.notificationDeliveries(endpointID: "e1", before: nil, limit: 10)
        #expect(log.map(\.id) == ["d5", "d4", "d3", "d2", "d1"])
        #expect(log.filter { $0.state == .dropped }.map(\.id) == ["d2", "d1"])
        #expect(log.filter { $0.state == .dropped }.allSatisfy { $0.error?.contains("outbox full") == true })
        #expect(log.filter { $0.state != .pending }.count <= 2, "at most maximumKept ended rows")

        var delivered = due[0]
        delivered.state = .delivered
        delivered.attempts = 1
        delivered.statusCode = 200
        try store.saveNotificationAttempt(delivered)
        // Asked again once a delivery handed out could be lost (PostgreSQL leases it to its
        // sender for `notificationLease`, which also moves it back in the due order; SQLite
        // has one sender and hands it out again at once).
        let again = Fixture.t0.addingTimeInterval(PostgresStore.notificationLease)
        #expect(try store.dueNotificationDeliveries(now: again, limit: 10, excluding: []).map(\.id).sorted() == ["d4", "d5"])
        // Paging: newest first, `before` the last seq seen.
        let first = try store.notificationDeliveries(endpointID: "e1", before: nil, limit: 1)
        let second = try store.notificationDeliveries(endpointID: "e1", before: first[0].seq, limit: 1)
        #expect(first.count == 1 && second.count == 1 && second[0].seq! < first[0].seq!)

        #expect(try store.deleteNotificationEndpoint(id: "e1"))
        #expect(try store.notificationDeliveries(endpointID: "e1", before: nil, limit: 10).isEmpty)
    }

    static func endpoint(_ id: String, createdAt: Date) -> StoredNotificationEndpoint {
        StoredNotificationEndpoint(
            id: id, url: "https://example.com/\(id)", events: #"["job.finished"]"#, project: "app", description: "for \(id)",
            sealedSecret: Data([1, 2]), keyId: "k1", createdBy: "admin", createdAt: createdAt)
    }

    @Test(arguments: StoreFactory.all)
    func endpointsReadBackListOldestFirstAndResealAllOrNone(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any NotificationStore)
        let t0 = Date(timeIntervalSince1970: 1_795_000_000)
        let (e1, e2) = (Self.endpoint("e1", createdAt: t0.addingTimeInterval(1)), Self.endpoint("e2", createdAt: t0))
        #expect(try store.insertNotificationEndpoint(e1, limit: 5))
        #expect(try store.insertNotificationEndpoint(e2, limit: 5))
        #expect(throws: (any Error).self, "an id is taken once") { try store.insertNotificationEndpoint(e1, limit: 5) }
        #expect(try store.notificationEndpoint(id: "e1") == e1)
        #expect(try store.notificationEndpoint(id: "nope") == nil)
        #expect(try store.notificationEndpoints().map(\.id) == ["e2", "e1"])

        struct Refused: Error {}
        #expect(throws: Refused.self) {
            try store.resealNotificationSecrets { row in
                guard row.id != "e2" else { throw Refused() }
                var row = row
                row.keyId = "k2"
                return row
            }
        }
        #expect(try store.notificationEndpoints().map(\.keyId) == ["k1", "k1"])
        let count = try store.resealNotificationSecrets { row in
            var row = row
            row.keyId = "k2"
            row.sealedSecret = Data(row.id.utf8)
            return row
        }
        #expect(count == 2)
        #expect(try store.notificationEndpoints().map(\.keyId) == ["k2", "k2"])
        #expect(try store.notificationEndpoint(id: "e2")?.sealedSecret == Data("e2".utf8))
        #expect(try store.deleteNotificationEndpoint(id: "e2"))
        #expect(try !store.deleteNotificationEndpoint(id: "e2"))
        #expect(try store.notificationEndpoints().map(\.id) == ["e1"])
    }

    @Test(arguments: StoreFactory.all)
    func anAttemptsOutcomeIsSavedWhileTheDeliveryIsPending(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = try #require(scratch.store as? any NotificationStore)
        let t0 = Date(timeIntervalSince1970: 1_795_000_000)
        #expect(try store.insertNotificationEndpoint(Self.endpoint("e1", createdAt: t0), limit: 5))
        let pending = StoredNotificationDelivery(
            id: "d1", endpointId: "e1", event: "job.finished", payload: Data(#"{"a":1}"#.utf8), state: .pending, attempts: 0,
            createdAt: t0, nextAttemptAt: t0)
        try store.enqueueNotificationDeliveries([pending], processed: [], bounds: NotificationOutbox(), now: t0)
        var retried = try #require(try store.dueNotificationDeliveries(now: t0, limit: 5, excluding: []).first)
        #expect(retried.seq != nil)
        retried.attempts = 1
        retried.statusCode = 503
        retried.error = "HTTP 503"
        retried.responseBody = "busy"
        retried.durationMs = 12
        retried.lastAttemptAt = t0
        retried.nextAttemptAt = t0.addingTimeInterval(4)
        try store.saveNotificationAttempt(retried)
        #expect(try store.notificationDeliveries(endpointID: "e1", before: nil, limit: 5) == [retried], "every field reads back")
        #expect(try store.dueNotificationDeliveries(now: t0.addingTimeInterval(3), limit: 5, excluding: []).isEmpty)

        var failed = retried
        failed.state = .failed
        failed.attempts = 2
        failed.nextAttemptAt = nil
        failed.error = "gave up"
        try store.saveNotificationAttempt(failed)
        var late = failed
        late.state = .delivered
        try store.saveNotificationAttempt(late)
        #expect(try store.notificationDeliveries(endpointID: "e1", before: nil, limit: 5) == [failed], "an ended delivery stays ended")
        #expect(try store.dueNotificationDeliveries(now: t0.addingTimeInterval(60), limit: 5, excluding: []).isEmpty)
    }

    /// Two coordinators on one PostgreSQL database, both running a `NotificationService`:
    /// an event is fanned out by one of them, and a due delivery is handed to one sender.
    @Test func coordinatorsSharingADatabaseFanOutAndSendEachOnce() throws {
        let url = try PostgresServer.shared.get().makeDatabase()
        let stores = try (0..<2).map { _ in try PostgresStore(url: url, logger: Logger(label: "test")) }
        defer { for store in stores { store.pool.shutdown() } }
        let t0 = Date(timeIntervalSince1970: 1_795_000_000)
        #expect(try stores[0].insertNotificationEndpoint(Self.endpoint("e1", createdAt: t0), limit: 5))
        try stores[0].commit(
            StoreBatch([
                .notificationEvents(
                    (0..<20).map { StoredNotificationEvent(type: .jobFinished, pipelineId: "p\($0)", jobId: "j", occurredAt: t0) })
            ]))

        // Each fan-out reads the same events and makes deliveries of its own for them.
        let events = try stores[0].unprocessedNotificationEvents(limit: 100)
        #expect(events.count == 20)
        let failures = Mutex<[String]>([])
        CronScheduleTests.onThreads(4) { worker in
            let deliveries = events.map { event in
                StoredNotificationDelivery(
                    id: "w\(worker)-\(event.id ?? 0)", endpointId: "e1", event: event.type, payload: Data("{}".utf8), state: .pending,
                    attempts: 0, createdAt: t0, nextAttemptAt: t0)
            }
            do {
                try stores[worker % 2].enqueueNotificationDeliveries(
                    deliveries, processed: events.compactMap(\.id), bounds: NotificationOutbox(), now: t0)
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(try stores[1].unprocessedNotificationEvents(limit: 100).isEmpty)
        let log = try stores[1].notificationDeliveries(endpointID: "e1", before: nil, limit: 100)
        #expect(log.count == 20, "one fan-out's deliveries, not several")
        #expect(Set(log.map { $0.id.prefix(while: { $0 != "-" }) }).count == 1)

        // Senders on both coordinators ask for due deliveries at once: each is handed out once.
        let handed = Mutex<[String]>([])
        CronScheduleTests.onThreads(8) { worker in
            do {
                let due = try stores[worker % 2].dueNotificationDeliveries(now: t0, limit: 3, excluding: [])
                handed.withLock { $0 += due.map(\.id) }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        let ids = handed.withLock { $0 }
        #expect(ids.count == Set(ids).count, "no delivery handed to two senders")
        #expect(ids.count == 20, "8 senders taking 3 each take all 20")
        #expect(try stores[0].dueNotificationDeliveries(now: t0, limit: 30, excluding: []).isEmpty, "all leased")
        let expired = t0.addingTimeInterval(PostgresStore.notificationLease)
        #expect(try stores[1].dueNotificationDeliveries(now: expired, limit: 30, excluding: []).count == 20, "a lost sender's lease ends")
    }
}
