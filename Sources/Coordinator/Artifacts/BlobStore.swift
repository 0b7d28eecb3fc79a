import Crypto
import Foundation
import GantryProtocol
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The content-addressed files under `STATE/artifacts`: each digest's bytes once, at
/// `sha256/ab/<hex>`, and each open upload's part file at `uploads/<session>.part`.
///
/// A blob is only ever made by renaming a synced, verified part file into place (then
/// syncing the directory), so a blob's path holds either nothing or exactly its digest's
/// bytes, whatever crashes. Every blocking call runs on NIO's thread pool, never on a
/// cooperative thread, and nothing reads or writes a whole file at once: at most
/// `batchBytes` at a time.
public final class BlobStore: Sendable {
    public let root: String
    /// Serializes "is this blob there and named?" against "is it orphaned, delete it", so
    /// an upload that finds a blob cannot lose it to an eviction deciding at the same time.
    let placement = Mutex<Void>(())
    /// Bytes per trip to the thread pool, both ways: an upload's body is written in
    /// batches of about this much (`PartBatch`), a blob is read in chunks of it. A trip
    /// costs a thread handoff each way; per socket read (tens of KiB through TLS) that was
    /// tens of thousands of handoffs per GiB. 1 MiB keeps a request's buffered bytes small.
    public static let batchBytes = 1 << 20

    public init(root: String) throws {
        self.root = root
        for directory in [root, root + "/sha256", root + "/uploads"] {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
    }

    public func blobPath(_ digest: String) -> String {
        "\(root)/sha256/\(digest.prefix(2))/\(digest)"
    }

    public func partPath(_ session: String) -> String {
        "\(root)/uploads/\(session).part"
    }

    public func hasBlob(_ digest: String) -> Bool {
        var info = stat()
        return stat(blobPath(digest), &info) == 0
    }

    /// The size of a part file, or nil if it is missing.
    public func partSize(_ session: String) -> Int64? {
        var info = stat()
        return stat(partPath(session), &info) == 0 ? Int64(info.st_size) : nil
    }

    public func createPart(_ session: String) throws {
        let fd = open(partPath(session), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BlobError.io("create \(partPath(session))", errno) }
        close(fd)
    }

    public func removePart(_ session: String) {
        unlink(partPath(session))
    }

    /// Opens a part file for appending at `offset` (what the store says is stored): longer
    /// content (written before a crash, never acknowledged) is cut off first. `digest`,
    /// when given, is the sha256 state of the first `offset` bytes (`PartDigests`): the
    /// writer extends it with every byte it writes.
    public func openPart(_ session: String, at offset: Int64, digest: PartDigests.Running? = nil) async throws -> PartWriter {
        precondition(digest.map { $0.bytes == offset } ?? true, "a running digest must cover exactly the stored bytes")
        let path = partPath(session)
        return try await NIOThreadPool.singleton.runIfActive {
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw BlobError.io("open \(path)", errno) }
            guard ftruncate(fd, off_t(offset)) == 0 else {
                let code = errno
                close(fd)
                throw BlobError.io("truncate \(path)", code)
            }
            return PartWriter(fd: fd, offset: offset, digest: digest)
        }
    }

    /// The sha256 and length of a part file, read in chunks off the caller's thread.
    public func digest(ofPart session: String) async throws -> (digest: String, size: Int64) {
        try await Self.digest(path: partPath(session))
    }

    static func digest(path: String) async throws -> (digest: String, size: Int64) {
        try await NIOThreadPool.singleton.runIfActive {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw BlobError.io("open \(path)", errno) }
            defer { close(fd) }
            var hash = SHA256()
            var size: Int64 = 0
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count >= 0 else { throw BlobError.io("read \(path)", errno) }
                if count == 0 { break }
                buffer.withUnsafeBytes { hash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                size += Int64(count)
            }
            return (ArtifactDigest.hex(hash.finalize()), size)
        }
    }

    /// Moves a verified part file to its digest's path (or drops it when the blob is
    /// already there: stored once), and syncs the directory so the rename survives a crash.
    public func place(part session: String, as digest: String) async throws {
        let part = partPath(session)
        let directory = "\(root)/sha256/\(digest.prefix(2))"
        let target = blobPath(digest)
        try await NIOThreadPool.singleton.runIfActive { [self] in
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try placement.withLock { _ in
                if hasBlob(digest) {
                    unlink(part)
                    return
                }
                guard rename(part, target) == 0 else { throw BlobError.io("rename \(part) to \(target)", errno) }
            }
            Self.syncDirectory(directory)
            Self.syncDirectory(root + "/uploads")
        }
    }

    /// Runs `body` while no blob can be deleted: `body` sees whether the blob exists and
    /// records a row naming it in the same breath. It blocks (a lock, SQLite writes), so
    /// call it on NIO's thread pool, never on a cooperative thread
    /// (`ArtifactService.withBlobHeld`).
    public func withBlobHeld<T: Sendable>(_ body: () throws -> T) throws -> T {
        try placement.withLock { _ in try body() }
    }

    /// Deletes the blobs of `digests` that `stillReferenced` says nothing names any more.
    /// Blocks (a lock, store reads, unlinks of large files): on NIO's thread pool only
    /// (`ArtifactService.deleteOrphans`).
    public func deleteOrphans(_ digests: [String], stillReferenced: (String) throws -> Bool) {
        for digest in digests {
            placement.withLock { _ in
                if (try? stillReferenced(digest)) == false { unlink(blobPath(digest)) }
            }
        }
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// Opens a blob for reading: its descriptor and size.
    public func openBlob(_ digest: String) throws -> BlobReader {
        let path = blobPath(digest)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BlobError.io("open \(path)", errno) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw BlobError.io("stat \(path)", errno)
        }
        return BlobReader(fd: fd, size: Int64(info.st_size))
    }
}

private func closeDescriptor(_ fd: Int32) {
    close(fd)
}

public enum BlobError: Error, CustomStringConvertible {
    case io(String, Int32)

    public var description: String {
        switch self {
        case .io(let what, let code): return "\(what): \(String(cString: strerror(code)))"
        }
    }
}

/// Appends to one part file; owned by one PATCH request at a time.
public final class PartWriter: @unchecked Sendable {
    // One request's task uses it at a time (the session's writer lock); `fd`, `offset`
    // and `digest` are only touched inside the thread-pool calls that task awaits in turn.
    private let fd: Int32
    public private(set) var offset: Int64
    /// The sha256 state of the part's bytes `[0, offset)`, when the writer was opened with
    /// one: every buffer is hashed right after it is written, on the same trip.
    public private(set) var digest: PartDigests.Running?

    init(fd: Int32, offset: Int64, digest: PartDigests.Running? = nil) {
        self.fd = fd
        self.offset = offset
        self.digest = digest
    }

    public func write(_ buffer: ByteBuffer) async throws {
        try await write([buffer])
    }

    /// Writes `buffers` in order, in one trip to the thread pool and one `pwritev` (the
    /// request's body arrives in socket-read-sized pieces; `PartBatch` gathers them
    /// without copying). `offset` (and `digest`) move by each buffer written whole, so a
    /// write that fails part-way leaves them at the end of the last whole buffer.
    public func write(_ buffers: [ByteBuffer]) async throws {
        let (fd, start, digest) = (self.fd, self.offset, self.digest)
        let (outcome, hashed) = try await NIOThreadPool.singleton.runIfActive {
            () -> (VectoredFileWrite.Outcome, PartDigests.Running?) in
            var digest = digest
            let outcome = VectoredFileWrite.write(buffers, to: fd, at: start) { digest?.hasher.update(bufferPointer: $0) }
            digest?.bytes += outcome.written
            return (outcome, digest)
        }
        offset = start + outcome.written
        self.digest = hashed
        if let code = outcome.error { throw BlobError.io("write part file", code) }
    }

    /// Syncs what was written (before the store records the new offset) and closes;
    /// the error if the sync failed (a full disk can surface only here), when none of this
    /// request's bytes may be recorded as stored.
    ///
    /// A write that fails part-way (ENOSPC after some bytes) does not move `offset`: the
    /// bytes past it are cut off by the next `openPart`, so the recorded offset never
    /// covers a byte that was not written and synced.
    public func finish() async -> BlobError? {
        do {
            return try await NIOThreadPool.singleton.runIfActive { [fd] () -> BlobError? in
                let failed = fsync(fd) != 0 ? BlobError.io("sync part file", errno) : nil
                close(fd)
                return failed
            }
        } catch {
            close(fd)
            return BlobError.io("sync part file", EIO)
        }
    }
}

/// Reads one blob in chunks, from a position on.
public final class BlobReader: @unchecked Sendable {
    // Read by one response's task at a time, in turn; closed once at its end.
    let fd: Int32
    public let size: Int64

    init(fd: Int32, size: Int64) {
        self.fd = fd
        self.size = size
    }

    /// Bytes `[from, to]` in chunks of at most `BlobStore.batchBytes`, each handed to
    /// `write`. One chunk is read ahead: the next is read on the thread pool while `write`
    /// encrypts and sends this one, so the disk read never waits for the socket nor the
    /// socket for the disk. At most two chunks are held.
    public func stream(from: Int64, through to: Int64, _ write: (ByteBuffer) async throws -> Void) async throws {
        let eventLoop = MultiThreadedEventLoopGroup.singleton.any()
        var position = from
        var next: EventLoopFuture<ByteBuffer>? = position <= to ? read(at: position, through: to, on: eventLoop) : nil
        while let pending = next {
            let buffer = try await pending.get()
            position += Int64(buffer.readableBytes)
            next = position <= to ? read(at: position, through: to, on: eventLoop) : nil
            do {
                try await write(buffer)
            } catch {
                // The read ahead must end before the caller closes the descriptor it reads.
                _ = try? await next?.get()
                throw error
            }
        }
    }

    /// One chunk from `position` (at most `BlobStore.batchBytes`, never past `to`), read on
    /// the thread pool.
    private func read(at position: Int64, through to: Int64, on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        let count = Int(min(Int64(BlobStore.batchBytes), to - position + 1))
        return NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) { [fd] in
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            let read = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer -> Int in
                while true {
                    let n = pread(fd, pointer.baseAddress, count, off_t(position))
                    if n < 0, errno == EINTR { continue }
                    guard n >= 0 else { throw BlobError.io("read blob", errno) }
                    return n
                }
            }
            guard read > 0 else { throw BlobError.io("read blob: unexpected end", EIO) }
            return buffer
        }
    }

    public func finish() {
        closeDescriptor(fd)
    }
}
