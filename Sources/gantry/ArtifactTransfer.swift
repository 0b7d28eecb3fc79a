import AsyncHTTPClient
import Crypto
import Foundation
import GantryProtocol
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Streaming uploads and downloads of artifacts through the coordinator's upload sessions
/// and content route: a file is never held in memory whole, a dropped connection resumes
/// from what the coordinator stored (its session offset, or the bytes already on disk
/// with `Range`), and every file is checked against its sha256.
struct ArtifactTransfer {
    let client: APIClient
    /// Attempts of one file's transfer after the first failure, with a doubling pause.
    static let maximumRetries = 8
    static let chunkBytes = 256 * 1024
    static let uploadOffset = "Upload-Offset"

    /// The sha256 and size of a file, read in 1 MiB chunks.
    static func digest(of path: String) throws -> (digest: String, size: UInt64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var hash = SHA256()
        var size: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            buffer.withUnsafeBytes { hash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            size += UInt64(count)
        }
        return (ArtifactDigest.hex(hash.finalize()), size)
    }

    // MARK: - Upload

    /// Uploads `path` as `name` for job `jobID`; the artifact as stored.
    ///
    /// Every step survives a dropped connection, not only the PATCH: opening the session
    /// again resumes it (or answers with the artifact, if it was stored), so a lost answer
    /// to `complete` or `create` is retried from the top. The coordinator's refusals (an
    /// error code) are final.
    func upload(path: String, name: String, jobID: String) async throws -> API.Artifact {
        let (digest, size) = try Self.digest(of: path)
        var failures = 0
        var moved = 0
        while true {
            do {
                var session: API.ArtifactUpload = try await client.send(
                    "POST", APIRoute.createArtifactUpload.path(["id": jobID]),
                    body: API.CreateArtifactUpload(name: name, size: size, sha256: digest))
                if let artifact = session.artifact { return artifact }
                while session.offset < session.size {
                    do {
                        session = try await append(path: path, session: session)
                    } catch let error as SessionMoved {
                        // Held by a writer the coordinator has not seen drop yet (up to its
                        // idle timeout, 30 s): bounded, about a minute of 500 ms waits.
                        moved += 1
                        guard moved <= Self.maximumSessionMoves else {
                            throw UploadAbandoned(description: "uploading \(name): the coordinator kept its session busy for over a minute")
                        }
                        session = error.session
                    } catch let error as CLIError where error.code != nil {
                        throw error
                    } catch {
                        try await backOff(name, error, failures: &failures)
                        // Where the coordinator says it is; if it cannot be asked yet, the next
                        // PATCH is answered 409 with the offset instead.
                        if let stored: API.ArtifactUpload = try? await client.send(
                            "GET", APIRoute.getArtifactUpload.path(["id": session.id]))
                        {
                            session = stored
                        }
                    }
                }
                let done: API.ArtifactUpload = try await client.send(
                    "POST", APIRoute.completeArtifactUpload.path(["id": session.id]), body: Optional<API.SubmitPipeline>.none)
                guard let artifact = done.artifact else { throw CLIError("the coordinator did not record \(name)") }
                return artifact
            } catch let error as CLIError where error.code != nil {
                // The coordinator refused (its error code): retrying would not change that.
                throw error
            } catch let error as UploadAbandoned {
                throw error
            } catch {
                try await backOff(name, error, failures: &failures)
            }
        }
    }

    /// Counts a transport failure, gives up past `maximumRetries`, else says so and waits.
    private func backOff(_ name: String, _ error: any Error, failures: inout Int) async throws {
        failures += 1
        guard failures <= Self.maximumRetries else {
            throw UploadAbandoned(description: "uploading \(name) failed \(failures) times, last: \(error)")
        }
        FileHandle.standardError.write(Data("gantry: upload of \(name) interrupted (\(error)); resuming\n".utf8))
        try await Task.sleep(for: .milliseconds(200 << min(failures, 6)))
    }

    /// This upload gave up (too many failures, or a session busy too long): final.
    struct UploadAbandoned: Error, CustomStringConvertible {
        var description: String
    }

    /// 409 answers in a row before giving up on a session another writer holds.
    static let maximumSessionMoves = 120

    /// The coordinator's session is elsewhere than we thought (409): resume from it.
    struct SessionMoved: Error {
        var session: API.ArtifactUpload
    }

    /// One PATCH of the rest of the file from the session's offset, streamed from disk.
    func append(path: String, session: API.ArtifactUpload) async throws -> API.ArtifactUpload {
        let remaining = session.size - session.offset
        var request = HTTPClientRequest(url: client.base + APIRoute.appendArtifactUpload.path(["id": session.id]))
        request.method = .PATCH
        request.headers.add(name: "Authorization", value: "Bearer \(client.token)")
        request.headers.add(name: Self.uploadOffset, value: String(session.offset))
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.body = .stream(FileChunks(path: path, from: session.offset, length: remaining), length: .known(Int64(remaining)))
        let response = try await client.execute(request, timeout: .hours(24))
        let bytes = try await response.body.collect(upTo: 1024 * 1024)
        if response.status == .conflict, let moved = try? API.decoder.decode(API.ArtifactUpload.self, from: Data(buffer: bytes)) {
            // Another writer still held it (a connection the server has not seen drop
            // yet): wait a little before resuming from its offset.
            try await Task.sleep(for: .milliseconds(500))
            throw SessionMoved(session: moved)
        }
        try client.check(response.status, bytes)
        return try API.decoder.decode(API.ArtifactUpload.self, from: Data(buffer: bytes))
    }

    // MARK: - Download

    /// Downloads `artifact` to `target` through `target.part`, resuming with `Range` after
    /// a dropped connection, and renames it into place once its sha256 matches. The bytes
    /// are hashed as they are written (`DownloadSink`), never read back.
    func download(_ artifact: API.Artifact, to target: String) async throws {
        let part = target + ".part"
        try FileManager.default.createDirectory(
            atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CLIError("cannot write \(part): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        ftruncate(fd, 0)
        let sink = DownloadSink(fd: fd)
        var failures = 0
        while sink.written < artifact.size {
            do {
                try await fetch(artifact, into: sink)
            } catch let error as CLIError where error.code != nil {
                throw error
            } catch {
                failures += 1
                guard failures <= Self.maximumRetries else {
                    throw CLIError("downloading \(artifact.name) failed \(failures) times, last: \(error)")
                }
                FileHandle.standardError.write(Data("gantry: download of \(artifact.name) interrupted (\(error)); resuming\n".utf8))
                try await Task.sleep(for: .milliseconds(200 << min(failures, 6)))
            }
        }
        fsync(fd)
        let digest = sink.finalize()
        guard digest == artifact.sha256, sink.written == artifact.size else {
            unlink(part)
            throw CLIError(
                "\(artifact.name): the downloaded bytes have sha256 \(digest) (\(sink.written) bytes), not \(artifact.sha256)")
        }
        guard rename(part, target) == 0 else { throw CLIError("cannot rename \(part) to \(target): \(String(cString: strerror(errno)))") }
    }

    /// Appends the artifact's bytes from `sink.written` on; whatever arrived before a
    /// failure stays written (and hashed), so the next try resumes after it.
    private func fetch(_ artifact: API.Artifact, into sink: DownloadSink) async throws {
        let offset = sink.written
        var request = HTTPClientRequest(url: client.base + APIRoute.downloadArtifact.path(["digest": artifact.sha256]))
        request.headers.add(name: "Authorization", value: "Bearer \(client.token)")
        if offset > 0 { request.headers.add(name: "Range", value: "bytes=\(offset)-") }
        let response = try await client.execute(request, timeout: .hours(24))
        guard response.status == .ok || response.status == .partialContent else {
            try client.check(response.status, try await response.body.collect(upTo: 1024 * 1024))
            throw CLIError("the coordinator answered \(response.status.code)")
        }
        if let served = response.headers.first(name: "X-Gantry-Sha256"), served != artifact.sha256 {
            throw CLIError("the coordinator served sha256 \(served) for \(artifact.sha256)")
        }
        // A 200 to a ranged request starts from byte 0.
        if response.status == .ok, offset > 0 { try await sink.restart() }
        var position = sink.written
        do {
            for try await buffer in response.body {
                position += UInt64(buffer.readableBytes)
                guard position <= artifact.size else { throw CLIError("the coordinator sent more than \(artifact.size) bytes") }
                try await sink.append(buffer)
            }
        } catch {
            try await sink.flush()
            throw error
        }
        try await sink.flush()
    }
}

/// A file's bytes from an offset, as an async sequence of 256 KiB buffers: the body of
/// one PATCH, read as AsyncHTTPClient sends it.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let path: String
    let from: UInt64
    let length: UInt64

    /// The open file, closed when the iterator is dropped: an interrupted PATCH stops
    /// reading half-way, and each retry opens it again.
    final class Descriptor: @unchecked Sendable {
        // Used by one iterator, which the HTTP client drives from one task at a time.
        var value: Int32 = -1

        deinit {
            if value >= 0 { close(value) }
        }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let descriptor = Descriptor()
        let path: String
        var position: UInt64
        var remaining: UInt64

        mutating func next() async throws -> ByteBuffer? {
            guard remaining > 0 else { return nil }
            if descriptor.value < 0 {
                descriptor.value = open(path, O_RDONLY | O_CLOEXEC)
                guard descriptor.value >= 0 else { throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))") }
            }
            let fd = descriptor.value
            let count = Int(Swift.min(UInt64(ArtifactTransfer.chunkBytes), remaining))
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            let (descriptor, at) = (fd, position)
            let read = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer -> Int in
                while true {
                    let n = pread(descriptor, pointer.baseAddress, count, off_t(at))
                    if n < 0, errno == EINTR { continue }
                    guard n > 0 else { throw CLIError("\(path) changed while it was being uploaded") }
                    return n
                }
            }
            position += UInt64(read)
            remaining -= UInt64(read)
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(path: path, position: from, remaining: length)
    }
}
