import Crypto
import Foundation
@testable import GantryCoordinator
import GantryPostgresStore
import GantryProtocol
import GRDB
import Logging
import NIOCore
import Testing

/// Retention: the pure decision (what goes, what is protected), the collector against a
/// real store of every back end (`StoreFactory.all`) and blob directory, and the
/// disk-full mapping.
@Suite("Retention")
final class RetentionTests {
    typealias Store = any CoordinatorStore & ArtifactStore & RetentionStore

    let directory: String
    /// The store under test; its database goes when the test's instance does.
    var scratch: ScratchStore?
    let now = Fixture.t0.addingTimeInterval(100 * 86_400)

    init() throws {
        directory = NSTemporaryDirectory() + "gantry-retention-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func candidate(_ id: String, daysAgo: Double, bytes: Int64 = 10) -> RetentionCandidate {
        RetentionCandidate(
            pipelineID: id, finishedAt: now.addingTimeInterval(-daysAgo * 86_400), artifactBytes: bytes, logsPending: true,
            artifactsPending: true)
    }

    @Test func ageDecidesAndProtectedPipelinesStay() {
        var settings = RetentionSettings()
        settings.logAge = 10 * 86_400
        settings.artifactAge = 5 * 86_400
        let plan = RetentionPlan.decide(
            candidates: [candidate("old", daysAgo: 20), candidate("mid", daysAgo: 7), candidate("new", daysAgo: 1), candidate("kept", daysAgo: 50)],
            protected: ["kept"], totalArtifactBytes: 40, settings: settings, now: now)
        #expect(plan.removeLogs == ["old"])
        #expect(plan.removeArtifacts == ["old", "mid"])
    }

    @Test func byteBudgetTakesTheOldestFirst() {
        var settings = RetentionSettings()
        settings.artifactAge = 0
        settings.logAge = 0
        settings.artifactBytes = 25
        let plan = RetentionPlan.decide(
            candidates: [candidate("b", daysAgo: 3), candidate("a", daysAgo: 4), candidate("c", daysAgo: 2), candidate("k", daysAgo: 9)],
            protected: ["k"], totalArtifactBytes: 40, settings: settings, now: now)
        // 40 bytes (four of 10), budget 25: the oldest unprotected go until it fits, a
        // (30 left) then b (20); c stays, and k however old, as it is protected.
        #expect(Set(plan.removeArtifacts) == ["a", "b"])
        #expect(plan.removeLogs.isEmpty)
    }

    @Test func zeroKeepsForever() {
        var settings = RetentionSettings()
        settings.logAge = 0
        settings.artifactAge = 0
        settings.artifactBytes = 0
        let plan = RetentionPlan.decide(
            candidates: [candidate("old", daysAgo: 10_000)], protected: [], totalArtifactBytes: 1 << 40, settings: settings, now: now)
        #expect(plan.isEmpty)
    }

    @Test func promotionChainsOfProtectedPipelinesAreProtected() {
        let promotes = ["deploy": "release", "release": "build", "other": "x", "loop1": "loop2", "loop2": "loop1"]
        let protected = RetentionPlan.protected(roots: ["deploy", "loop1"]) { promotes[$0] }
        #expect(protected == ["deploy", "release", "build", "loop1", "loop2"])
    }

    func makeStore(_ factory: StoreFactory) throws -> Store {
        let scratch = try factory.make()
        self.scratch = scratch
        return try #require(scratch.store as? Store)
    }

    /// Inserts a finished (or running) pipeline with one job, a log chunk and an artifact.
    func seed(_ store: Store, _ blobs: BlobStore, _ id: String, bytes: [UInt8], running: Bool = false, from: String? = nil) throws -> String {
        var pipeline = Fixture.pipeline(id, at: Fixture.t0)
        pipeline.artifactsFrom = from
        var job = Fixture.job("\(id)-j", pipeline: pipeline, position: 0, state: running ? .running : .succeeded)
        job.attempt = 1
        job.finishedAt = running ? nil : Fixture.t0
        try store.commit(StoreBatch([.insertPipeline(pipeline, jobs: [job]), .appendLog(Fixture.chunk(job.id, attempt: 1, offset: 0, text: "hello\n"))]))
        let digest = ArtifactDigest.hex(SHA256.hash(data: bytes))
        let path = blobs.blobPath(digest)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        _ = try store.storeArtifact(
            StoredArtifact(
                sha256: digest, name: "out.bin", size: Int64(bytes.count), pipelineId: id, stepKey: "step-0", jobId: job.id, attempt: 1,
                commit: "abc", agentId: "h/1", createdAt: Fixture.t0),
            maximumPerJob: 10)
        return digest
    }

    @Test(arguments: StoreFactory.all)
    func collectorRemovesOldUnprotectedAndKeepsTheRest(_ factory: StoreFactory) throws {
        let store = try makeStore(factory)
        let blobs = try BlobStore(root: directory + "/artifacts")
        let old = try seed(store, blobs, "old", bytes: [1])
        let base = try seed(store, blobs, "base", bytes: [5])
        let kept = try seed(store, blobs, "kept", bytes: [2], from: "base")
        let promoted = try seed(store, blobs, "promoted", bytes: [3])
        let running = try seed(store, blobs, "running", bytes: [4], running: true, from: "promoted")
        let shared = try seed(store, blobs, "shared", bytes: [2])  // the same bytes as the kept one's
        #expect(shared == kept)
        #expect(try store.setKept(pipelineID: "kept", true))
        #expect(try !store.setKept(pipelineID: "nothing", true))
        #expect(try store.retentionMarks(pipelineID: "nothing") == nil)
        #expect(try store.protectedPipelines() == ["kept", "base", "running", "promoted"])
        #expect(try store.totalArtifactBytes() == 6)
        #expect(try store.retentionCandidates(logs: true, artifacts: false, limit: 10).map(\.pipelineID) == ["base", "old", "promoted", "shared"])
        #expect(try store.retentionCandidates(logs: false, artifacts: false, limit: 10).isEmpty)
        // Protected when the removal runs: nothing goes.
        #expect(try store.removeArtifacts(pipelineID: "kept", at: now) == nil)
        #expect(try !store.removeLogs(pipelineID: "promoted", at: now))
        #expect(try store.retentionMarks(pipelineID: "promoted")?.logsRemovedAt == nil)
        _ = try store.saveCache(
            StoredCacheEntry(scope: "branch:main", key: "k", sha256: old, size: 1, createdAt: Fixture.t0, lastUsedAt: Fixture.t0),
            scopeLimit: 1 << 40)
        var settings = RetentionSettings()
        settings.logAge = 1
        settings.artifactAge = 1
        settings.cacheAge = 1
        let collector = RetentionCollector(store: store, blobs: blobs, settings: settings, logger: Logger(label: "test"))
        let report = try collector.collect(now: now)
        #expect(report.logPipelines == 2 && report.artifactPipelines == 2 && report.caches == 1)
        // Old and shared went; the blob shared with the kept pipeline stays.
        #expect(try store.artifacts(pipelineID: "old", stepKey: nil, limit: 10).isEmpty)
        #expect(try store.artifacts(pipelineID: "shared", stepKey: nil, limit: 10).isEmpty)
        #expect(!blobs.hasBlob(old))
        #expect(blobs.hasBlob(kept) && blobs.hasBlob(promoted) && blobs.hasBlob(running) && blobs.hasBlob(base))
        for id in ["kept", "base", "promoted", "running"] {
            #expect(try store.artifacts(pipelineID: id, stepKey: nil, limit: 10).count == 1, "\(id) keeps its artifact")
            #expect(try !store.logChunks(jobID: "\(id)-j", attempt: 1, from: 0).isEmpty, "\(id) keeps its log")
            #expect(try store.retentionMarks(pipelineID: id)?.logsRemovedAt == nil)
        }
        #expect(try store.logChunks(jobID: "old-j", attempt: 1, from: 0).isEmpty)
        #expect(try store.retentionMarks(pipelineID: "old")?.logsRemovedAt != nil)
        #expect(try store.retentionMarks(pipelineID: "kept")?.kept == true)
        // A second run finds nothing more; unkept, the kept one goes.
        #expect(try collector.collect(now: now) == RetentionCollector.Report())
        #expect(try store.setKept(pipelineID: "kept", false))
        // Unkept: it goes, and so does the pipeline only it protected by promoting it.
        #expect(try collector.collect(now: now).artifactPipelines == 2)
        #expect(!blobs.hasBlob(kept) && !blobs.hasBlob(base))
    }

    @Test(arguments: StoreFactory.all)
    func aPipelineThatRanAgainAfterItsCollectionIsWeighedAgain(_ factory: StoreFactory) throws {
        let store = try makeStore(factory)
        let blobs = try BlobStore(root: directory + "/artifacts")
        _ = try seed(store, blobs, "p", bytes: [9])
        var settings = RetentionSettings()
        settings.logAge = 1
        settings.artifactAge = 1
        let collector = RetentionCollector(store: store, blobs: blobs, settings: settings, logger: Logger(label: "test"))
        #expect(try collector.collect(now: now).logPipelines == 1)
        #expect(try store.retentionCandidates(logs: true, artifacts: true, limit: 10).isEmpty)
        // A retry finished after the collection: its new log is pending again.
        var job = try #require(try store.job(id: "p-j"))
        job.finishedAt = now.addingTimeInterval(60)
        try store.update([job])
        let again = try store.retentionCandidates(logs: true, artifacts: true, limit: 10)
        #expect(again.map(\.pipelineID) == ["p"] && again.first?.logsPending == true && again.first?.artifactsPending == true)
        #expect(try collector.collect(now: now.addingTimeInterval(86_400)).logPipelines == 1)
    }

    @Test func agesAreDaysFromZeroToACentury() throws {
        #expect(try RetentionSettings.age(days: 0, option: "x") == 0)
        #expect(try RetentionSettings.age(days: 1.5, option: "x") == 1.5 * 86_400)
        for bad in [-1, .nan, .infinity, 36_501] as [Double] {
            #expect(throws: RetentionSettingError.self) { try RetentionSettings.age(days: bad, option: "x") }
        }
    }

    /// What another coordinator may commit while a removal of `build`'s artifacts runs,
    /// each of which protects it: a keep, a retry of a pipeline promoting it, a new
    /// pipeline promoting it.
    enum RacingWrite: String, CaseIterable, Sendable {
        case keep, retryOfPromoter, newPromoter
    }

    /// On PostgreSQL a removal and another coordinator's write interleave: the removal
    /// must wait for the write holding what protection depends on, then see it.
    @Test(arguments: RacingWrite.allCases)
    func aRemovalWaitsForAWriteThatProtectsThePipeline(_ race: RacingWrite) throws {
        let store = try makeStore(.postgres)
        let postgres = try #require(store as? PostgresStore)
        let blobs = try BlobStore(root: directory + "/artifacts")
        _ = try seed(store, blobs, "build", bytes: [1])
        _ = try seed(store, blobs, "deploy", bytes: [2], from: "build")
        #expect(try !store.protectedPipelines().contains("build"))
        let held = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            defer { done.signal() }
            try? postgres.pool.write { db in
                switch race {
                case .keep:
                    try await db.execute("UPDATE pipelines SET kept = 1 WHERE id = 'build'")
                case .retryOfPromoter:
                    try await db.execute("UPDATE jobs SET state = 'queued', finished_at = NULL WHERE id = 'deploy-j'")
                case .newPromoter:
                    var pipeline = Fixture.pipeline("redeploy", at: Fixture.t0)
                    pipeline.artifactsFrom = "build"
                    try await db.insert(pipeline)
                    try await db.insert(Fixture.job("redeploy-j", pipeline: pipeline, position: 0, state: .queued))
                }
                held.signal()
                // Long enough for the removal to start and reach the rows this holds.
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        held.wait()
        let removed = try store.removeArtifacts(pipelineID: "build", at: now)
        done.wait()
        #expect(removed == nil, "the removal saw the \(race) committed while it waited")
        #expect(try store.artifacts(pipelineID: "build", stepKey: nil, limit: 10).count == 1)
    }

    /// On PostgreSQL an expiry running while another coordinator serves a hit on a cache
    /// (or a PATCH on a session) leaves the entry: old when the expiry began, in use by the
    /// time it could delete it.
    @Test func anExpiryLeavesWhatAnotherCoordinatorIsUsing() throws {
        let store = try makeStore(.postgres)
        let postgres = try #require(store as? PostgresStore)
        let blobs = try BlobStore(root: directory + "/artifacts")
        let digest = try seed(store, blobs, "p", bytes: [1], running: true)
        _ = try store.saveCache(
            StoredCacheEntry(scope: "branch:main", key: "k", sha256: digest, size: 1, createdAt: Fixture.t0, lastUsedAt: Fixture.t0),
            scopeLimit: 1 << 40)
        let session = StoredArtifactUpload(
            id: "u", kind: .artifact, jobId: "p-j", attempt: 1, name: "a", scope: "", size: 10, sha256: digest, offset: 0,
            createdAt: Fixture.t0, updatedAt: Fixture.t0)
        _ = try store.openUpload(session, maximumOpen: 4)
        let held = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let later = now
        DispatchQueue.global().async {
            defer { done.signal() }
            try? postgres.pool.write { db in
                try await db.execute(
                    "UPDATE caches SET last_used_at = ? WHERE key = 'k'", [later.databaseValue])
                try await db.execute(#"UPDATE artifact_uploads SET "offset" = 5, updated_at = ? WHERE id = 'u'"#, [later.databaseValue])
                held.signal()
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        held.wait()
        let caches = try store.expireCaches(before: Fixture.t0.addingTimeInterval(1), limit: 10)
        let sessions = try store.expireUploads(before: Fixture.t0.addingTimeInterval(1))
        done.wait()
        #expect(caches.removed == 0 && sessions.isEmpty)
        #expect(try store.cacheEntry(scope: "branch:main", key: "k") != nil && store.upload(id: "u")?.offset == 5)
        // Once they are old again, both go.
        #expect(try store.expireCaches(before: now.addingTimeInterval(1), limit: 10).removed == 1)
        #expect(try store.expireUploads(before: now.addingTimeInterval(1)).map(\.id) == ["u"])
    }

    @Test func diskFullMapsTo507AndOthersDoNot() {
        #expect(DiskFull.matches(BlobError.io("write part file", ENOSPC)))
        #expect(DiskFull.matches(BlobError.io("write part file", EDQUOT)))
        #expect(!DiskFull.matches(BlobError.io("write part file", EIO)))
        #expect(DiskFull.matches(DatabaseError(resultCode: .SQLITE_FULL)))
        #expect(!DiskFull.matches(DatabaseError(resultCode: .SQLITE_BUSY)))
        let response = DiskFull.response(BlobError.io("write part file", ENOSPC), storedUpTo: 42)
        #expect(response?.status.code == 507)
        #expect(DiskFull.response(BlobError.io("x", EIO)) == nil)
    }
}
