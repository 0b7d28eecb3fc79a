import Crypto
import GantryProtocol
import Synchronization

/// The running sha256 of each open upload session's part file, kept between its PATCHes,
/// so that completing a session does not read the whole part file again to hash it: each
/// byte is hashed once, on the thread-pool trip that writes it (`PartWriter`). For a 1 GiB
/// artifact that second pass was a whole read and sha256 of the file after the last byte
/// arrived, with nothing else to overlap it.
///
/// An entry is only trusted when it covers exactly the bytes the store says are stored
/// (`take(_:coveringBytes:)`): a coordinator restart, a failed sync or a store write that
/// failed after the sync leave no entry or one of another length, and the caller falls back
/// to reading the part file (`BlobStore.digest(ofPart:)`), as before. Taking an entry
/// removes it, so a session's state is held either by its one writer
/// (`ArtifactService.claim`) or by this map, never by both. At most `maximumEntries` are
/// kept (a few hundred bytes each); past that, new sessions simply fall back.
public final class PartDigests: Sendable {
    /// The sha256 state of a part file's first `bytes` bytes.
    public struct Running: Sendable {
        public var hasher = SHA256()
        public var bytes: Int64 = 0

        public init() {}

        /// 64 lowercase hex digits.
        public func finalize() -> String {
            ArtifactDigest.hex(hasher.finalize())
        }
    }

    /// Open sessions are bounded per job (`maximumOpenSessionsPerJob`) but not in total:
    /// this bounds the memory whatever the number of jobs uploading at once.
    public static let maximumEntries = 4096

    private let entries = Mutex<[String: Running]>([:])

    public init() {}

    /// The state covering exactly the first `count` bytes of `session`'s part file: the
    /// kept one if it covers that many, a fresh one if `count` is 0, else nil (hash the
    /// file instead). Whatever was kept for the session is removed.
    public func take(_ session: String, coveringBytes count: Int64) -> Running? {
        let kept = entries.withLock { $0.removeValue(forKey: session) }
        if let kept, kept.bytes == count { return kept }
        return count == 0 ? Running() : nil
    }

    /// Keeps `running` for the session's next PATCH or its completion; only call it once
    /// the bytes it covers are synced and their offset recorded.
    public func keep(_ session: String, _ running: Running) {
        entries.withLock { entries in
            guard entries[session] != nil || entries.count < Self.maximumEntries else { return }
            entries[session] = running
        }
    }

    public func drop(_ session: String) {
        _ = entries.withLock { $0.removeValue(forKey: session) }
    }

    var count: Int { entries.withLock { $0.count } }
}
