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
/// cooperative thread, and nothing reads or writes a whole file at once: 256 KiB at a time.
public final class BlobStore: Sendable {
    public let root: String
    /// Serializes "is this blob there and named?" against "is it orphaned, delete it", so
    /// an upload that finds a blob cannot lose it to an eviction deciding at the same time.
    let placement = Mutex<Void>(())
    static let chunkBytes = 256 * 1024

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
    /// content (written before a crash, never acknowledged) is cut off first.
    public func openPart(_ session: String, at offset: Int64) async throws -> PartWriter {
        let path = partPath(session)
        return try await NIOThreadPool.singleton.runIfActive {
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw BlobError.io("open \(path)", errno) }
            guard ftruncate(fd, off_t(offset)) == 0 else {
                let code = errno
                close(fd)
                throw BlobError.io("truncate \(path)", code)
            }
            return PartWriter(fd: fd, offset: offset)
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
    // One request's task uses it at a time (the session's writer lock); `fd` and
    // `offset` are only touched inside the thread-pool calls that task awaits in turn.
    private let fd: Int32
    public private(set) var offset: Int64

    init(fd: Int32, offset: Int64) {
        self.fd = fd
        self.offset = offset
    }

    public func write(_ buffer: ByteBuffer) async throws {
        let written = try await NIOThreadPool.singleton.runIfActive { [fd, offset] in
            try buffer.withUnsafeReadableBytes { bytes -> Int in
                guard let base = bytes.baseAddress else { return 0 }
                var done = 0
                while done < bytes.count {
                    let count = pwrite(fd, base + done, bytes.count - done, off_t(offset) + off_t(done))
                    if count < 0, errno == EINTR { continue }
                    guard count > 0 else { throw BlobError.io("write part file", errno) }
                    done += count
                }
                return done
            }
        }
        offset += Int64(written)
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

    /// Bytes `[from, to]` in chunks of at most 256 KiB, each handed to `write`.
    public func stream(from: Int64, through to: Int64, _ write: (ByteBuffer) async throws -> Void) async throws {
        var position = from
        while position <= to {
            let count = Int(min(Int64(BlobStore.chunkBytes), to - position + 1))
            let buffer = try await NIOThreadPool.singleton.runIfActive { [fd, position] in
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
            position += Int64(buffer.readableBytes)
            try await write(buffer)
        }
    }

    public func finish() {
        closeDescriptor(fd)
    }
}
