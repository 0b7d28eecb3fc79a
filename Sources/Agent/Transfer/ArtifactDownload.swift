import Crypto
import GantryProtocol
import NIOCore
import NIOHTTP1
import NIOPosix
import SystemPackage

/// Fetches bytes named by their digest into a file, resuming with `Range: bytes=N-` after
/// a dropped connection, and checks what arrived against the digest (and the
/// `X-Gantry-Sha256` the API names it by). Nothing is buffered beyond one socket read.
struct DigestDownload {
    let client: TransferHTTPClient

    /// `path`: the content route; `size` and `sha256`: what the listing promised.
    func fetch(_ path: String, sha256: String, size: UInt64, into file: SystemPackage.FileDescriptor) async throws {
        let state = DownloadState()
        var failures = 0
        var pause = client.configuration.initialBackoff
        while true {
            let resumeAt = state.written
            var headers = [("Accept", "application/octet-stream")]
            if resumeAt > 0 { headers.append(("Range", "bytes=\(resumeAt)-")) }
            var restart = false
            var firstChunk = true
            do {
                let response = try await client.send(.GET, path, headers: headers) { status, buffer in
                    if firstChunk {
                        firstChunk = false
                        // A 200 to a ranged request sends the whole file again.
                        if status == 200 && resumeAt > 0 { restart = true }
                        if restart { try state.reset(file) }
                    }
                    // Written and hashed on NIO's blocking pool, like an upload's hashing:
                    // a multi-gigabyte download must not hold a cooperative thread.
                    try await NIOThreadPool.singleton.runIfActive { try state.append(buffer, to: file, limit: size) }
                }
                switch response.status {
                case 200, 206:
                    if let named = response.headers.first(name: "X-Gantry-Sha256"), named != sha256 {
                        throw TransferError.digestMismatch(expected: sha256, actual: named)
                    }
                    if response.status == 206 {
                        let range = response.headers.first(name: "Content-Range") ?? ""
                        guard range.hasPrefix("bytes \(resumeAt)-") else {
                            throw TransferError.protocolViolation("asked for bytes from \(resumeAt), got `\(range.prefix(80))`")
                        }
                    } else if resumeAt > 0 && !restart {
                        // An empty 200 body to a ranged request: start over.
                        try state.reset(file)
                        continue
                    }
                    guard state.written == size else {
                        throw TransferError.digestMismatch(expected: "\(size) bytes of \(sha256)", actual: "\(state.written) bytes")
                    }
                    let actual = state.finish()
                    guard actual == sha256 else { throw TransferError.digestMismatch(expected: sha256, actual: actual) }
                    return
                case 416 where resumeAt == size:
                    // Everything had arrived before the connection dropped.
                    let actual = state.finish()
                    guard actual == sha256 else { throw TransferError.digestMismatch(expected: sha256, actual: actual) }
                    return
                default:
                    let error = TransferHTTPClient.statusError(response)
                    guard error.isRetryable else { throw error }
                    throw TransferError.connection("\(error)")
                }
            } catch let error as TransferError {
                guard case .connection = error else { throw error }
                // Progress resets the count: a slow link that drops often still finishes.
                failures = state.written > resumeAt ? 1 : failures + 1
                guard failures < client.configuration.attempts else { throw error }
                do { try await Task.sleep(for: pause * Double.random(in: 0.5...1.0)) } catch { throw TransferError.stopped }
                pause = state.written > resumeAt ? client.configuration.initialBackoff : min(pause * 2, client.configuration.maximumBackoff)
            }
        }
    }
}

/// What one download has written and hashed so far. A class so the sink closure and the
/// retry loop share it. Unchecked `Sendable`: the download's task hands it to the
/// blocking pool one buffer at a time and awaits each before touching it again, so it
/// is never used by two threads at once.
private final class DownloadState: @unchecked Sendable {
    var hasher = SHA256()
    var written: UInt64 = 0

    func append(_ buffer: ByteBuffer, to file: SystemPackage.FileDescriptor, limit: UInt64) throws {
        let count = UInt64(buffer.readableBytes)
        guard written + count <= limit else {
            throw TransferError.protocolViolation("the API sent more than the \(limit) bytes it listed")
        }
        try buffer.withUnsafeReadableBytes { raw in
            var done = 0
            while done < raw.count {
                let wrote = try file.write(
                    toAbsoluteOffset: Int64(written) + Int64(done), UnsafeRawBufferPointer(rebasing: raw[done...]))
                guard wrote > 0 else { throw TransferError.file("cannot write the download") }
                done += wrote
            }
            hasher.update(bufferPointer: raw)
        }
        written += count
    }

    func reset(_ file: SystemPackage.FileDescriptor) throws {
        try file.resize(to: 0)
        hasher = SHA256()
        written = 0
    }

    func finish() -> String { FileDigest.hex(hasher.finalize()) }
}
