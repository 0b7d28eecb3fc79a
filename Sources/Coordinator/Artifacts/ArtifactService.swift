import Foundation
import GantryProtocol
import Logging
import NIOPosix
import Synchronization

/// The artifact room as the routes use it: the blob files, the rows, the limits, and
/// which upload sessions a request is writing now.
///
/// Everything here runs on the request's task (file work on NIO's thread pool); the
/// lifecycle's single writer is asked nothing but "is this attempt held?", which the job
/// token's authentication already did.
public final class ArtifactService: Sendable {
    public let store: any ArtifactStore
    public let blobs: BlobStore
    public let limits: ArtifactLimits
    /// Sessions a PATCH or completion is working on now: one writer per part file.
    private let busy = Mutex<Set<String>>([])
    private let lastSweep = Mutex<Date>(.distantPast)
    /// The running sha256 of open sessions' part files, between their PATCHes.
    let partDigests = PartDigests()
    let logger: Logger

    public init(store: any ArtifactStore, blobs: BlobStore, limits: ArtifactLimits = ArtifactLimits(), logger: Logger) {
        self.store = store
        self.blobs = blobs
        self.limits = limits
        self.logger = logger
    }

    /// `STATE/artifacts` of a coordinator's state directory.
    public convenience init(
        state: CoordinatorStateDirectory, store: any ArtifactStore, limits: ArtifactLimits, logger: Logger
    ) throws {
        try self.init(store: store, blobs: BlobStore(root: state.path + "/artifacts"), limits: limits, logger: logger)
        sweep(now: Date(), force: true)
        removeStrayParts()
    }

    /// Part files without a session row (a crash between creating the file and its row,
    /// or an expiry whose unlink did not happen): removed at start, before any request
    /// can be writing one.
    func removeStrayParts() {
        let directory = blobs.root + "/uploads"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        var removed = 0
        for name in names where name.hasSuffix(".part") {
            let id = String(name.dropLast(".part".count))
            if (try? store.upload(id: id)) == .some(nil) {
                blobs.removePart(id)
                removed += 1
            }
        }
        if removed > 0 { logger.info("removed part files of no upload session", metadata: ["count": "\(removed)"]) }
    }

    /// Claims `session` for one writer; false if another request holds it.
    func claim(_ session: String) -> Bool {
        busy.withLock { $0.insert(session).inserted }
    }

    func release(_ session: String) {
        _ = busy.withLock { $0.remove(session) }
    }

    /// Removes sessions nobody wrote to for `limits.sessionTimeToLive`, and their part
    /// files. At most once a minute, from the route that opens sessions (and at start).
    func sweep(now: Date, force: Bool = false) {
        let due = lastSweep.withLock { last -> Bool in
            guard force || now.timeIntervalSince(last) >= 60 else { return false }
            last = now
            return true
        }
        guard due else { return }
        do {
            let stale = try store.expireUploads(before: now.addingTimeInterval(-limits.sessionTimeToLive))
            for session in stale where !busy.withLock({ $0.contains(session.id) }) {
                blobs.removePart(session.id)
                partDigests.drop(session.id)
            }
            if !stale.isEmpty { logger.info("expired stale artifact upload sessions", metadata: ["count": "\(stale.count)"]) }
        } catch {
            logger.warning("could not expire stale artifact upload sessions: \(error)")
        }
    }

    /// Runs blocking work on NIO's thread pool: a lock held across SQLite calls, unlinks
    /// of multi-gigabyte blobs, a sweep. The routes run on Swift's cooperative pool,
    /// which has as many threads as cores (two here): a thread parked there on a lock or a
    /// disk stalls every task, the coordinator's single writer (and so agents' heartbeats)
    /// included.
    func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }

    /// `BlobStore.withBlobHeld` on the thread pool: `body` sees whether a blob exists and
    /// records a row naming it while no blob can be deleted.
    func withBlobHeld<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let blobs = self.blobs
        return try await offPool { try blobs.withBlobHeld(body) }
    }

    /// Deletes the blobs of `digests` that no artifact, cache or session names any more,
    /// on the thread pool; a failure only leaves a blob for a later deletion.
    func deleteOrphans(_ digests: [String]) async {
        guard !digests.isEmpty else { return }
        let (blobs, store) = (self.blobs, self.store)
        do {
            try await offPool { blobs.deleteOrphans(digests) { try store.blobReferenced($0) } }
        } catch {
            logger.warning("could not delete unreferenced blobs: \(error)")
        }
    }

    /// `sweep(now:)` on the thread pool (it is due at most once a minute, and a store
    /// write and unlinks when it is).
    func sweepOffPool(now: Date) async {
        _ = try? await offPool { [self] in sweep(now: now) }
    }

    /// Removes the part files of `sessions` (dropped rows) that no request is writing now.
    func removeParts(of sessions: [StoredArtifactUpload]) async {
        _ = try? await offPool { [self] in
            for session in sessions where !busy.withLock({ $0.contains(session.id) }) {
                blobs.removePart(session.id)
                partDigests.drop(session.id)
            }
        }
    }

    static func newSessionID() -> String {
        String(SecretDigest.random256Hex().prefix(32))
    }
}
