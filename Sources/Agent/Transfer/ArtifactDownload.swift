import Crypto
import GantryProtocol
import NIOCore
import NIOHTTP1
import NIOPosix
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fetches bytes named by their digest into a file, resuming with `Range: bytes=N-` after
/// a dropped connection, and checks what arrived against the digest (and the
/// `X-Gantry-Sha256` the API names it by). Nothing is buffered beyond one batch of
/// received buffers (`DownloadState.batchBytes`), which is written and hashed in one trip
/// to NIO's blocking pool.
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
                let response: TransferHTTPClient.Response
                do {
                    response = try await client.send(.GET, path, headers: headers) { status, buffer in
                        if firstChunk {
                            firstChunk = false
                            // A 200 to a ranged request sends the whole file again.
                            if status == 200 && resumeAt > 0 { restart = true }
                            if restart { try state.reset(file) }
                        }
                        // Written and hashed on NIO's blocking pool, like an upload's hashing:
                        // a multi-gigabyte download must not hold a cooperative thread.
                        if try state.gather(buffer, limit: size) {
                            try await NIOThreadPool.singleton.runIfActive { try state.writeGathered(to: file) }
                        }
                    }
                } catch {
                    // What arrived before the drop is kept: the resume starts after it.
                    try await NIOThreadPool.singleton.runIfActive { try state.writeGathered(to: file) }
                    throw error
                }
                try await NIOThreadPool.singleton.runIfActive { try state.writeGathered(to: file) }
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
/// blocking pool one batch at a time and awaits each before touching it again, so it
/// is never used by two threads at once.
private final class DownloadState: @unchecked Sendable {
    /// Received bytes gathered (by reference) before a trip to the blocking pool writes
    /// and hashes them: a trip per socket read was a thread handoff every few dozen KiB.
    static let batchBytes = 1 << 20

    var hasher = SHA256()
    /// Bytes written to the file and hashed, from byte 0.
    var written: UInt64 = 0
    private var gathered: [ByteBuffer] = []
    private var gatheredBytes: UInt64 = 0

    /// Holds `buffer` for the next write; true once a batch is worth writing.
    func gather(_ buffer: ByteBuffer, limit: UInt64) throws -> Bool {
        let count = UInt64(buffer.readableBytes)
        guard written + gatheredBytes + count <= limit else {
            throw TransferError.protocolViolation("the API sent more than the \(limit) bytes it listed")
        }
        if count > 0 {
            gathered.append(buffer)
            gatheredBytes += count
        }
        return gatheredBytes >= Self.batchBytes || gathered.count >= VectoredFileWrite.maximumVectors
    }

    /// Writes and hashes what was gathered, in order. A failed write drops the batch:
    /// `written` stays at the last whole buffer, where a resume starts.
    func writeGathered(to file: SystemPackage.FileDescriptor) throws {
        let buffers = gathered
        gathered = []
        gatheredBytes = 0
        let outcome = VectoredFileWrite.write(buffers, to: file.rawValue, at: Int64(written)) { hasher.update(bufferPointer: $0) }
        written += UInt64(outcome.written)
        if let code = outcome.error {
            throw TransferError.file("cannot write the download: \(String(cString: strerror(code)))")
        }
    }

    func reset(_ file: SystemPackage.FileDescriptor) throws {
        try file.resize(to: 0)
        hasher = SHA256()
        written = 0
        gathered = []
        gatheredBytes = 0
    }

    func finish() -> String { FileDigest.hex(hasher.finalize()) }
}
