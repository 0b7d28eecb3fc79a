import Foundation
@testable import GantryCoordinator
import GantryPostgresStore
import Logging
import Synchronization
import Testing

/// What SQLite's single writer gave for free and PostgreSQL must get from its locks:
/// coordinators sharing one database (two `PostgresStore`s, each with its own pool) racing
/// through the check-then-write transactions. Each race runs several rounds, so an
/// unlocked read-then-write would show up as an overdraw.
@Suite("PostgreSQL races between coordinators", .timeLimit(.minutes(1)))
struct PostgresRaceTests {
    static func twoCoordinators() throws -> [PostgresStore] {
        let url = try PostgresServer.shared.get().makeDatabase()
        return try (0..<2).map { _ in try PostgresStore(url: url, logger: Logger(label: "test")) }
    }

    /// Runs `body(index, store)` for `count` indexes at once, alternating the stores: each
    /// on a thread of its own, released together, so the transactions overlap on the
    /// server (cooperative tasks on a two-core machine would mostly take turns).
    static func race<Result: Sendable>(
        _ stores: [PostgresStore], _ count: Int, _ body: @escaping @Sendable (Int, PostgresStore) throws -> Result
    ) throws -> [Result] {
        let results = Mutex<[Swift.Result<Result, any Error>]>([])
        let ready = DispatchSemaphore(value: 0)
        let start = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        for index in 0..<count {
            let store = stores[index % stores.count]
            done.enter()
            Thread.detachNewThread {
                ready.signal()
                start.wait()
                let result = Swift.Result { try body(index, store) }
                results.withLock { $0.append(result) }
                done.leave()
            }
        }
        for _ in 0..<count { ready.wait() }
        for _ in 0..<count { start.signal() }
        done.wait()
        return try results.withLock { $0 }.map { try $0.get() }
    }

    @Test func aSingleUseTokenEnrollsOneHostOnly() throws {
        let stores = try Self.twoCoordinators()
        defer { for store in stores { store.pool.shutdown() } }
        let now = Date()
        for round in 0..<5 {
            let (token, _) = JoinToken.create(labels: [], description: "race", expiresAt: nil, uses: 1, now: now, host: nil)
            try stores[0].insertJoinToken(token)
            let refusals = try Self.race(stores, 6) { index, store in
                let record = EnrollmentRecord(
                    serial: "r\(round)-\(index)", host: "host-\(round)-\(index)", labels: [], joinTokenID: token.id, issuedAt: now,
                    notAfter: now.addingTimeInterval(3600))
                return try store.redeemJoinToken(id: token.id, now: now, recording: record) == nil
            }
            #expect(refusals.filter { $0 }.count == 1, "round \(round)")
            #expect(try stores[1].joinToken(id: token.id)?.usesLeft == 0)
        }
    }

    @Test func oneNameEnrollsOnceAcrossCoordinators() throws {
        let stores = try Self.twoCoordinators()
        defer { for store in stores { store.pool.shutdown() } }
        let now = Date()
        for round in 0..<5 {
            let enrolled = try Self.race(stores, 6) { index, store in
                let record = EnrollmentRecord(
                    serial: "n\(round)-\(index)", host: "name-\(round)", labels: [], joinTokenID: nil, issuedAt: now,
                    notAfter: now.addingTimeInterval(3600))
                return try store.recordEnrollment(record, now: now) == nil
            }
            #expect(enrolled.filter { $0 }.count == 1, "round \(round)")
        }
    }

    @Test func aRenewalRacingAForgetIsRevokedOrRefused() throws {
        let stores = try Self.twoCoordinators()
        defer { for store in stores { store.pool.shutdown() } }
        let now = Date()
        for round in 0..<10 {
            let host = "renewing-\(round)"
            let first = EnrollmentRecord(
                serial: "f\(round)", host: host, labels: [], joinTokenID: nil, issuedAt: now, notAfter: now.addingTimeInterval(3600))
            #expect(try stores[0].recordEnrollment(first, now: now) == nil)
            let renewal = EnrollmentRecord(
                serial: "s\(round)", host: host, labels: [], joinTokenID: nil, issuedAt: now, notAfter: now.addingTimeInterval(7200),
                renewedFrom: first.serial)
            _ = try Self.race(stores, 2) { index, store in
                if index == 0 {
                    _ = try store.recordRenewal(renewal)
                } else {
                    _ = try store.revokeHost(host, at: now, by: "test")
                }
            }
            // Whichever came first, no certificate of the host is left unrevoked.
            let second = try stores[0].enrollment(serial: renewal.serial)
            #expect(second == nil || second?.revokedAt != nil, "round \(round)")
        }
    }

    @Test func metaDataStaysWithinItsBound() throws {
        let stores = try Self.twoCoordinators()
        defer { for store in stores { store.pool.shutdown() } }
        for round in 0..<5 {
            let pipeline = "p\(round)"
            try stores[0].commit(StoreBatch([.insertPipeline(Fixture.pipeline(pipeline, at: Fixture.t0), jobs: [])]))
            let writes = try Self.race(stores, 12) { index, store in
                try store.setMetaData(
                    StoredMetaData(pipelineId: pipeline, key: "k\(index)", value: "v", jobId: nil, updatedAt: Fixture.t0), maximumKeys: 5)
            }
            #expect(writes.filter { $0 == .created }.count == 5, "round \(round)")
            #expect(try stores[1].metaDataKeys(pipelineID: pipeline, limit: 100).count == 5, "round \(round)")
        }
    }

    /// The second coordinator's write after the reseal read is not overwritten with the
    /// old value resealed.
    @Test func aResealRetriesWhenASecretChangesUnderIt() throws {
        let stores = try Self.twoCoordinators()
        defer { for store in stores { store.pool.shutdown() } }
        let secret = StoredSecret(
            name: "TOKEN", scope: "pipeline", sealed: Data([1]), keyId: "old", createdAt: Fixture.t0, updatedAt: Fixture.t0,
            updatedBy: "a")
        try stores[0].save(secret)
        var calls = 0
        let count = try stores[0].resealAll { row in
            calls += 1
            if calls == 1 {
                var newer = row
                newer.sealed = Data([2])
                newer.updatedAt = Fixture.t0.addingTimeInterval(1)
                try stores[1].save(newer)
            }
            var resealed = row
            resealed.sealed = row.sealed + Data([0xAA])
            resealed.keyId = "new"
            return resealed
        }
        #expect(count == 1 && calls == 2)
        let stored = try #require(try stores[1].secrets().first)
        #expect(stored.sealed == Data([2, 0xAA]) && stored.keyId == "new" && stored.createdAt == Fixture.t0)
    }
}
