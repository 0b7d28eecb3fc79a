import Crypto
import Foundation
@testable import GantryCoordinator
import GantryPostgresStore
import GantryProtocol
import Logging
import NIOCore
import Synchronization
import Testing

/// The artifact room without HTTP: name rules, the blob store's part files and
/// placement, upload sessions and their offsets across a reopened store, immutability,
/// per-job bounds, expiry, cache scope resolution and least-recently-used eviction. The
/// store's tests run against every back end (`StoreFactory.all`).
@Suite("Artifact store")
final class ArtifactStoreTests {
    let directory: String
    /// The store under test; its database goes when the test's instance does.
    var scratch: ScratchStore?

    init() throws {
        directory = NSTemporaryDirectory() + "gantry-artifacts-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func sha(_ bytes: [UInt8]) -> String { ArtifactDigest.hex(SHA256.hash(data: bytes)) }

    func storeWithJob(_ factory: StoreFactory) throws -> (any CoordinatorStore & ArtifactStore, StoredJob) {
        let scratch = try factory.make()
        self.scratch = scratch
        let store = try #require(scratch.store as? any CoordinatorStore & ArtifactStore)
        let pipeline = Fixture.pipeline("p1", at: Fixture.t0)
        let job = Fixture.job("j1", pipeline: pipeline, position: 0, state: .running)
        let other = Fixture.job("j2", pipeline: pipeline, position: 1, state: .running)
        try store.commit(StoreBatch([.insertPipeline(pipeline, jobs: [job, other])]))
        return (store, job)
    }

    func artifact(_ name: String, _ sha: String, job: String = "j1", size: Int64 = 3) -> StoredArtifact {
        StoredArtifact(
            sha256: sha, name: name, size: size, pipelineId: "p1", stepKey: "build", jobId: job, attempt: 1, commit: "abc",
            agentId: "host/1", createdAt: Fixture.t0)
    }

    @Test(arguments: [
        ("dist/app.tar.gz", true), ("a", true), ("build/reports/x.xml", true), ("", false), ("/etc/passwd", false),
        ("../x", false), ("a/../b", false), ("a/./b", false), ("a//b", false), ("a/", false), ("./a", false),
        ("a\u{0}b", false), ("a\nb", false), ("a\\b", false), (String(repeating: "x", count: 1024), true),
        (String(repeating: "x", count: 1025), false),
    ])
    func nameRules(_ name: String, _ valid: Bool) {
        #expect((ArtifactName.problem(name) == nil) == valid, "\(name.prefix(40))")
    }

    @Test func digestRules() {
        #expect(ArtifactDigest.isValid(Self.sha([1, 2, 3])))
        #expect(!ArtifactDigest.isValid(Self.sha([1, 2, 3]).uppercased()))
        #expect(!ArtifactDigest.isValid("sha256:" + Self.sha([1])))
        #expect(!ArtifactDigest.isValid(String(Self.sha([1]).dropLast())))
        #expect(ByteRange.parse("bytes=5-", size: 10).map { [$0.0, $0.1] } == [5, 9])
        #expect(ByteRange.parse("bytes=2-4", size: 10).map { [$0.0, $0.1] } == [2, 4])
        #expect(ByteRange.parse("bytes=2-400", size: 10).map { [$0.0, $0.1] } == [2, 9])
        #expect(ByteRange.parse("bytes=10-", size: 10) == nil)
        #expect(ByteRange.parse("bytes=4-2", size: 10) == nil)
        #expect(ByteRange.parse("bytes=-5", size: 10) == nil)
        #expect(ByteRange.parse("items=0-", size: 10) == nil)
    }

    /// A part file written in two sessions' worth of appends, a crash's unacknowledged
    /// tail cut off by the next open, then verified and placed once by digest.
    @Test func partFilesResumeAtTheStoredOffsetAndArePlacedOnce() async throws {
        let blobs = try BlobStore(root: directory + "/artifacts")
        let bytes = (0..<700_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let digest = Self.sha(bytes)
        try blobs.createPart("s1")
        let first = try await blobs.openPart("s1", at: 0)
        try await first.write(ByteBuffer(bytes: bytes[..<300_000]))
        // Bytes past what the store acknowledged (as if the process died before recording them).
        try await first.write(ByteBuffer(bytes: [9, 9, 9]))
        #expect(await first.finish() == nil)
        #expect(blobs.partSize("s1") == 300_003)
        let second = try await blobs.openPart("s1", at: 300_000)
        #expect(blobs.partSize("s1") == 300_000)
        try await second.write(ByteBuffer(bytes: bytes[300_000...]))
        #expect(await second.finish() == nil)
        let (hash, size) = try await blobs.digest(ofPart: "s1")
        #expect(hash == digest && size == 700_000)
        #expect(!blobs.hasBlob(digest))
        try await blobs.place(part: "s1", as: digest)
        #expect(blobs.hasBlob(digest) && blobs.partSize("s1") == nil)
        #expect(blobs.blobPath(digest).hasSuffix("/sha256/\(digest.prefix(2))/\(digest)"))
        // The same bytes again: the part is dropped, the blob stays one file.
        try blobs.createPart("s2")
        let again = try await blobs.openPart("s2", at: 0)
        try await again.write(ByteBuffer(bytes: bytes))
        #expect(await again.finish() == nil)
        try await blobs.place(part: "s2", as: digest)
        #expect(blobs.partSize("s2") == nil && blobs.hasBlob(digest))
        // Read back from an offset, in chunks.
        let reader = try blobs.openBlob(digest)
        var read: [UInt8] = []
        try await reader.stream(from: 100, through: 699_999) { read += Array($0.readableBytesView) }
        reader.finish()
        #expect(read == Array(bytes[100...]))
    }

    /// The same database opened again, as a restarted coordinator does.
    static func reopened(_ store: any CoordinatorStore) throws -> any ArtifactStore {
        switch store {
        case let sqlite as SQLiteStore: return try SQLiteStore(path: sqlite.database.path)
        case let postgres as PostgresStore: return try PostgresStore(location: postgres.location, logger: Logger(label: "test"))
        default: throw CocoaError(.featureUnsupported)
        }
    }

    @Test(arguments: StoreFactory.all)
    func sessionsKeepTheirOffsetAcrossAReopenedStoreAndExpire(_ factory: StoreFactory) throws {
        let (store, _) = try storeWithJob(factory)
        let session = StoredArtifactUpload(
            id: "u1", kind: .artifact, jobId: "j1", attempt: 1, name: "a", scope: "", size: 10, sha256: Self.sha([1]), offset: 0,
            createdAt: Fixture.t0, updatedAt: Fixture.t0)
        #expect(try store.openUpload(session, maximumOpen: 2).opened?.id == "u1")
        var same = session
        same.id = "u9"
        #expect(try store.openUpload(same, maximumOpen: 2).opened?.id == "u1", "the same file again resumes its session")
        var second = session
        second.id = "u2"
        second.name = "b"
        #expect(try store.openUpload(second, maximumOpen: 2).opened?.id == "u2")
        second.id = "u3"
        second.name = "c"
        #expect(try store.openUpload(second, maximumOpen: 2).opened == nil, "a third open session is refused")
        #expect(try store.moveUpload(id: "u1", offset: 6, at: Fixture.t0.addingTimeInterval(100)))
        #expect(try !store.moveUpload(id: "no-such-session", offset: 6, at: Fixture.t0), "a session that is gone records nothing")
        let reopened = try Self.reopened(store)
        #expect(try reopened.upload(id: "u1")?.offset == 6)
        #expect(try reopened.blobReferenced(Self.sha([1])), "an open session holds its digest")
        let expired = try reopened.expireUploads(before: Fixture.t0.addingTimeInterval(50))
        #expect(expired.map(\.id) == ["u2"])
        #expect(try reopened.upload(id: "u1") != nil && reopened.upload(id: "u2") == nil)
    }

    /// The service's sweep removes stale sessions with their part files, and at start any
    /// part file without a session; a fresh session and its file stay.
    @Test(arguments: StoreFactory.all)
    func staleSessionsAndStrayPartFilesAreRemoved(_ factory: StoreFactory) throws {
        let (store, _) = try storeWithJob(factory)
        let service = ArtifactService(
            store: store, blobs: try BlobStore(root: directory + "/artifacts"), logger: Logger(label: "test"))
        let now = Date()
        for (id, age) in [("old", 2 * service.limits.sessionTimeToLive), ("fresh", 10)] {
            let at = now.addingTimeInterval(-age)
            #expect(
                try store.openUpload(
                    StoredArtifactUpload(
                        id: id, kind: .artifact, jobId: "j1", attempt: 1, name: id, scope: "", size: 10, sha256: Self.sha([1]),
                        offset: 0, createdAt: at, updatedAt: at), maximumOpen: 16).opened?.id == id)
            try service.blobs.createPart(id)
        }
        try service.blobs.createPart("stray")
        service.sweep(now: now, force: true)
        service.removeStrayParts()
        #expect(service.blobs.partSize("old") == nil && service.blobs.partSize("stray") == nil)
        #expect(service.blobs.partSize("fresh") == 0)
        #expect(try store.upload(id: "old") == nil && store.upload(id: "fresh") != nil)
    }

    @Test(arguments: StoreFactory.all)
    func artifactsAreImmutableAndBoundedPerJob(_ factory: StoreFactory) throws {
        let (store, _) = try storeWithJob(factory)
        let a = Self.sha([1]), b = Self.sha([2])
        #expect(try store.storeArtifact(artifact("x", a), maximumPerJob: 2) == .stored(artifact("x", a)))
        // The same bytes again under the name: the row already there.
        #expect(try store.storeArtifact(artifact("x", a), maximumPerJob: 2) == .stored(artifact("x", a)))
        #expect(try store.storeArtifact(artifact("x", b), maximumPerJob: 2) == .conflict(artifact("x", a)))
        // Another job may use the name.
        #expect(try store.storeArtifact(artifact("x", b, job: "j2"), maximumPerJob: 2) == .stored(artifact("x", b, job: "j2")))
        #expect(try store.storeArtifact(artifact("y", b), maximumPerJob: 2) == .stored(artifact("y", b)))
        #expect(try store.storeArtifact(artifact("z", b), maximumPerJob: 2) == .full)
        #expect(try store.artifacts(pipelineID: "p1", stepKey: "build", limit: 10).count == 3)
        #expect(try store.artifacts(sha256: b, limit: 10).map { "\($0.jobId):\($0.name)" } == ["j1:y", "j2:x"])
        #expect(try store.artifactExists(sha256: a, size: 3, inPipelines: ["p1"]))
        #expect(try !store.artifactExists(sha256: a, size: nil, inPipelines: ["p2"]) && !store.artifactExists(sha256: a, size: 4, inPipelines: ["p1"]))
        #expect(try !store.artifactExists(sha256: a, size: nil, inPipelines: []))
        #expect(try store.artifact(jobID: "j1", name: "x") == artifact("x", a))
        #expect(try store.artifact(jobID: "j1", name: "z") == nil && store.artifact(jobID: "j3", name: "x") == nil)
        #expect(try store.artifacts(sha256: b, limit: 1).map(\.jobId) == ["j1"])
        #expect(try store.artifacts(pipelineID: "p1", stepKey: nil, limit: 10).map { "\($0.jobId):\($0.name)" } == ["j1:x", "j2:x", "j1:y"])
        #expect(try store.artifacts(pipelineID: "p1", stepKey: "test", limit: 10).isEmpty)
    }

    /// A job's first download of a digest is its deployment; later ones change nothing.
    /// A deleted session is gone, and with it its hold on its digest.
    @Test(arguments: StoreFactory.all)
    func deploymentsAreRecordedOnceAndSessionsDeleted(_ factory: StoreFactory) throws {
        let (store, _) = try storeWithJob(factory)
        let a = Self.sha([1])
        let first = StoredArtifactDeployment(
            sha256: a, pipelineId: "p1", jobId: "j1", stepKey: "deploy", environment: "production", at: Fixture.t0)
        try store.recordDeployment(first)
        var again = first
        again.at = Fixture.t0.addingTimeInterval(60)
        again.environment = "staging"
        try store.recordDeployment(again)
        let second = StoredArtifactDeployment(
            sha256: a, pipelineId: "p1", jobId: "j2", stepKey: "deploy", environment: "staging", at: Fixture.t0.addingTimeInterval(5))
        try store.recordDeployment(second)
        let listed = try store.deployments(sha256: a, limit: 10)
        #expect(listed.map(\.0) == [first, second])
        #expect(listed.map(\.state) == ["running", "running"])
        #expect(try store.deployments(sha256: a, limit: 1).count == 1)
        #expect(try store.deployments(sha256: Self.sha([2]), limit: 10).isEmpty)

        let session = StoredArtifactUpload(
            id: "u1", kind: .cache, jobId: "j1", attempt: 1, name: "key", scope: "branch:main", size: 10, sha256: a, offset: 0,
            createdAt: Fixture.t0, updatedAt: Fixture.t0)
        #expect(try store.openUpload(session, maximumOpen: 1).opened == session)
        #expect(try store.upload(id: "u1") == session && store.blobReferenced(a))
        try store.deleteUpload(id: "u1")
        try store.deleteUpload(id: "u1")
        #expect(try store.upload(id: "u1") == nil && !store.blobReferenced(a))
        #expect(try !store.moveUpload(id: "u1", offset: 5, at: Fixture.t0))
        // Clearing with no scope or key clears every scope.
        for scope in ["branch:main", "branch:x"] {
            _ = try store.saveCache(
                StoredCacheEntry(scope: scope, key: "k", sha256: a, size: 1, createdAt: Fixture.t0, lastUsedAt: Fixture.t0), scopeLimit: 100)
        }
        let (cleared, orphans) = try store.clearCaches(scope: nil, key: nil)
        #expect(cleared.map(\.scope) == ["branch:main", "branch:x"] && orphans == [a])
        #expect(try store.cacheEntries(scopes: [], limit: 10).isEmpty)
    }

    /// Two coordinators on one database (two handles here) asking at once: a job's
    /// artifacts stay within their bound, one file gets one session, and a scope's caches
    /// stay within their budget, as when one writer decides each in turn.
    @Test(arguments: StoreFactory.all)
    func concurrentWritersKeepTheBoundsOfOneWriter(_ factory: StoreFactory) throws {
        let (store, _) = try storeWithJob(factory)
        let other = try Self.reopened(store)
        let stores: [any ArtifactStore] = [store, other]
        let writes = Mutex<[ArtifactWrite]>([])
        let sessions = Mutex<Set<String>>([])
        let failures = Mutex<[String]>([])
        let rows = (0..<16).map { artifact("n\($0)", Self.sha([UInt8($0)])) }
        DispatchQueue.concurrentPerform(iterations: 16) { index in
            let store = stores[index % 2]
            do {
                let write = try store.storeArtifact(rows[index], maximumPerJob: 5)
                writes.withLock { $0.append(write) }
                let opened = try store.openUpload(
                    StoredArtifactUpload(
                        id: "u\(index)", kind: .artifact, jobId: "j2", attempt: 1, name: "same", scope: "", size: 10,
                        sha256: Self.sha([9]), offset: 0, createdAt: Fixture.t0, updatedAt: Fixture.t0), maximumOpen: 4
                ).opened
                if let opened { sessions.withLock { _ = $0.insert(opened.id) } }
                _ = try store.saveCache(
                    StoredCacheEntry(
                        scope: "branch:main", key: "k\(index)", sha256: Self.sha([UInt8(index)]), size: 40,
                        createdAt: Fixture.t0.addingTimeInterval(Double(index)), lastUsedAt: Fixture.t0.addingTimeInterval(Double(index))),
                    scopeLimit: 100)
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        let stored = writes.withLock { $0.filter { if case .stored = $0 { true } else { false } } }
        #expect(stored.count == 5 && writes.withLock { $0.count } == 16)
        #expect(try store.artifacts(pipelineID: "p1", stepKey: nil, limit: 100).count == 5)
        #expect(sessions.withLock { $0.count } == 1, "one file, one session")
        #expect(try store.cacheEntries(scopes: ["branch:main"], limit: 100).count <= 2)
    }

    /// Stores `bytes` as a blob the way a completed session does.
    func place(_ bytes: [UInt8], in blobs: BlobStore, session: String) async throws -> String {
        try blobs.createPart(session)
        let writer = try await blobs.openPart(session, at: 0)
        try await writer.write(ByteBuffer(bytes: bytes))
        _ = await writer.finish()
        let digest = Self.sha(bytes)
        try await blobs.place(part: session, as: digest)
        return digest
    }

    /// A retry keeps the job id with attempt + 1 and rebuilds its files: immutability
    /// holds per attempt, so attempt 2 replaces attempt 1's bytes under the same name (the
    /// old blob goes when nothing else names it), attempt 1 never overwrites attempt 2,
    /// and attempt 1's abandoned sessions neither count against attempt 2 nor survive it.
    @Test(arguments: StoreFactory.all)
    func aRetryReplacesTheEarlierAttemptsArtifactsAndSessions(_ factory: StoreFactory) async throws {
        let (store, _) = try storeWithJob(factory)
        let service = ArtifactService(
            store: store, blobs: try BlobStore(root: directory + "/artifacts"), logger: Logger(label: "test"))
        let first = try await place([1, 1, 1], in: service.blobs, session: "p1")
        let second = try await place([2, 2, 2], in: service.blobs, session: "p2")
        var attempt1 = artifact("dist/app.tar.gz", first)
        #expect(try store.storeArtifact(attempt1, maximumPerJob: 4) == .stored(attempt1))
        var attempt2 = artifact("dist/app.tar.gz", second)
        attempt2.attempt = 2
        #expect(try store.storeArtifact(attempt2, maximumPerJob: 4) == .replaced(attempt2, previous: attempt1))
        await service.deleteOrphans([first])
        #expect(!service.blobs.hasBlob(first) && service.blobs.hasBlob(second), "the replaced blob is gone, the new one kept")
        // What a download resolves is attempt 2's, with attempt 2 as its provenance.
        let listed = try store.artifacts(pipelineID: "p1", stepKey: "build", limit: 10)
        #expect(listed.map(\.sha256) == [second] && listed.first?.attempt == 2)
        let reader = try service.blobs.openBlob(try #require(listed.first).sha256)
        var read: [UInt8] = []
        try await reader.stream(from: 0, through: 2) { read += Array($0.readableBytesView) }
        reader.finish()
        #expect(read == [2, 2, 2])
        // Attempt 2 again: its own bytes are immutable; attempt 1 never overwrites it.
        #expect(try store.storeArtifact(attempt2, maximumPerJob: 4) == .stored(attempt2))
        #expect(try store.storeArtifact(artifact("dist/app.tar.gz", first), maximumPerJob: 4) == .conflict(attempt2))
        var other = attempt2
        other.sha256 = Self.sha([3])
        #expect(try store.storeArtifact(other, maximumPerJob: 4) == .conflict(attempt2))
        attempt1.name = "other"
        #expect(try store.storeArtifact(attempt1, maximumPerJob: 4) == .stored(attempt1))

        // Sessions: attempt 1 fills the cap; attempt 2's first session drops them all.
        for index in 0..<3 {
            #expect(
                try store.openUpload(
                    StoredArtifactUpload(
                        id: "old\(index)", kind: .artifact, jobId: "j1", attempt: 1, name: "n\(index)", scope: "", size: 10,
                        sha256: Self.sha([9]), offset: 0, createdAt: Fixture.t0, updatedAt: Fixture.t0), maximumOpen: 3).opened != nil)
        }
        let retry = StoredArtifactUpload(
            id: "new", kind: .artifact, jobId: "j1", attempt: 2, name: "n0", scope: "", size: 10, sha256: Self.sha([9]), offset: 0,
            createdAt: Fixture.t0, updatedAt: Fixture.t0)
        let (opened, dropped) = try store.openUpload(retry, maximumOpen: 3)
        #expect(opened?.id == "new", "attempt 1's sessions do not count against attempt 2")
        #expect(Set(dropped.map(\.id)) == ["old0", "old1", "old2"])
        #expect(try store.upload(id: "old0") == nil)
        // Asking again resumes attempt 2's session.
        #expect(try store.openUpload(retry, maximumOpen: 3).opened?.id == "new")
    }

    /// Blocking work (the blob lock held across SQLite writes, deleting blobs, the sweep)
    /// runs on NIO's thread pool, whose threads are named `…TP-#N`: a cooperative thread
    /// parked there would stall every task, the coordinator's single writer included.
    @Test func blockingWorkRunsOnTheThreadPool() async throws {
        let (store, _) = try storeWithJob(.sqlite)
        let service = ArtifactService(
            store: store, blobs: try BlobStore(root: directory + "/artifacts"), logger: Logger(label: "test"))
        // Linux names the calling thread here (NIO sets it with pthread_setname_np).
        @Sendable func threadName() -> String {
            ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let held = try await service.withBlobHeld { threadName() }
        #expect(held.contains("TP-#"), "withBlobHeld ran on \(held)")
        let pooled = try await service.offPool { threadName() }
        #expect(pooled.contains("TP-#"), "offPool ran on \(pooled)")
        // Orphans are deleted there too, and only when nothing names them.
        try service.blobs.createPart("o")
        try await service.blobs.place(part: "o", as: Self.sha([]))
        await service.deleteOrphans([Self.sha([])])
        #expect(!service.blobs.hasBlob(Self.sha([])))
    }

    func candidate(_ scope: String, _ key: String, size: UInt64 = 10, created: Double, used: Double? = nil) -> CacheCandidate {
        CacheCandidate(
            scope: scope, key: key, size: size, createdAt: Fixture.t0.addingTimeInterval(created),
            lastUsedAt: Fixture.t0.addingTimeInterval(used ?? created))
    }

    /// A pipeline without a branch has no cache scope at all: no shared `branch:` scope
    /// that every branchless submission could write and the others restore.
    @Test func aBranchlessPipelineHasNoCache() {
        #expect(CacheScope.readable(branch: "", defaultBranch: "main").isEmpty)
        #expect(CacheScope.writable(branch: "") == nil)
        #expect(!CacheScope.hasScope(branch: "") && CacheScope.hasScope(branch: "main"))
    }

    /// A feature branch reads its own scope, then main's; main never reads the feature's.
    @Test func cacheScopesKeepBranchesApart() {
        #expect(CacheScope.readable(branch: "feature", defaultBranch: "main").map(\.name) == ["branch:feature", "branch:main"])
        #expect(CacheScope.readable(branch: "main", defaultBranch: "main").map(\.name) == ["branch:main"])
        #expect(CacheScope.writable(branch: "feature")?.name == "branch:feature")
        let entries = [
            candidate("branch:main", "swiftpm-aaa", created: 1), candidate("branch:main", "swiftpm-bbb", created: 5),
            candidate("branch:feature", "swiftpm-poison", created: 9), candidate("branch:feature", "swiftpm-ccc", created: 2),
        ]
        let main = CacheScope.readable(branch: "main", defaultBranch: "main")
        let feature = CacheScope.readable(branch: "feature", defaultBranch: "main")
        // Exact key first, in the job's own scope.
        let exact = CacheResolution.resolve(key: "swiftpm-ccc", restoreKeys: ["swiftpm-"], scopes: feature, entries: entries)
        #expect(exact?.entry.key == "swiftpm-ccc" && exact?.exact == true)
        // Main never sees what a feature branch saved: its newest own prefix match.
        let onMain = CacheResolution.resolve(key: "swiftpm-ccc", restoreKeys: ["swiftpm-"], scopes: main, entries: entries)
        #expect(onMain?.entry.key == "swiftpm-bbb" && onMain?.exact == false)
        // An exact key of main is found from a feature branch.
        let fromMain = CacheResolution.resolve(key: "swiftpm-aaa", restoreKeys: [], scopes: feature, entries: entries)
        #expect(fromMain?.entry.scope == "branch:main" && fromMain?.exact == true)
        // Restore keys in order; the newest match of the own scope wins over main's.
        let prefix = CacheResolution.resolve(key: "nope", restoreKeys: ["other-", "swiftpm-"], scopes: feature, entries: entries)
        #expect(prefix?.entry.key == "swiftpm-poison")
        #expect(CacheResolution.resolve(key: "nope", restoreKeys: ["x-"], scopes: feature, entries: entries) == nil)
    }

    @Test func evictionIsLeastRecentlyUsedAndSparesTheNewEntry() {
        let entries = [
            candidate("s", "old", size: 40, created: 1, used: 50), candidate("s", "cold", size: 40, created: 2, used: 3),
            candidate("s", "new", size: 40, created: 60),
        ]
        #expect(CacheResolution.evictions(in: entries, limit: 100, kept: "new") == ["cold"])
        #expect(CacheResolution.evictions(in: entries, limit: 40, kept: "new") == ["cold", "old"])
        #expect(CacheResolution.evictions(in: entries, limit: 500, kept: "new").isEmpty)
    }

    /// The store: the first save under a key wins, eviction on insert returns the
    /// orphaned digests (not those an artifact still names), a hit moves last use.
    @Test(arguments: StoreFactory.all)
    func savingEvictsAndReportsOrphans(_ factory: StoreFactory) throws {
        let (store, _) = try storeWithJob(factory)
        let a = Self.sha([1]), b = Self.sha([2]), c = Self.sha([3]), shared = Self.sha([4])
        func entry(_ key: String, _ sha: String, at: Double) -> StoredCacheEntry {
            StoredCacheEntry(
                scope: "branch:main", key: key, sha256: sha, size: 40, createdAt: Fixture.t0.addingTimeInterval(at),
                lastUsedAt: Fixture.t0.addingTimeInterval(at))
        }
        _ = try store.storeArtifact(artifact("kept", shared), maximumPerJob: 10)
        #expect(try store.saveCache(entry("k1", a, at: 1), scopeLimit: 100).orphans.isEmpty)
        #expect(try store.saveCache(entry("k2", shared, at: 2), scopeLimit: 100).orphans.isEmpty)
        // First save wins.
        #expect(try store.saveCache(entry("k1", c, at: 3), scopeLimit: 100).0.sha256 == a)
        // k1 used recently: k2 is the least recently used, but an artifact names its blob.
        try store.touchCache(scope: "branch:main", key: "k1", at: Fixture.t0.addingTimeInterval(10))
        let (_, orphans) = try store.saveCache(entry("k3", b, at: 11), scopeLimit: 100)
        #expect(orphans.isEmpty)
        #expect(try store.cacheEntries(scopes: ["branch:main"], limit: 10).map(\.key) == ["k1", "k3"])
        #expect(try store.cacheEntry(scope: "branch:main", key: "k1")?.lastUsedAt == Fixture.t0.addingTimeInterval(10))
        #expect(try store.cacheEntry(scope: "branch:main", key: "k2") == nil && store.cacheEntry(scope: "branch:x", key: "k1") == nil)
        let (_, more) = try store.saveCache(entry("k4", c, at: 12), scopeLimit: 100)
        #expect(more == [a], "k1 evicted next and nothing else names its blob")
        #expect(try store.cacheExists(sha256: b, size: 40, scopes: ["branch:main"]) && !store.cacheExists(sha256: b, size: nil, scopes: ["branch:x"]))
        let (cleared, freed) = try store.clearCaches(scope: "branch:main", key: "k3")
        #expect(cleared.map(\.key) == ["k3"] && freed == [b])
    }
}
