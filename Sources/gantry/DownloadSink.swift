import Crypto
import GantryProtocol
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a download's bytes into its file and hashes them on the way, so the file is
/// never read back to be checked: the received bytes are gathered (by reference, no copy)
/// into batches of `batchBytes`, and each batch is written and hashed on NIO's thread pool
/// while the next one arrives. At most two batches are held: one being written, one
/// being gathered.
///
/// `written` bytes of the file are written and covered by the running sha256, always from
/// byte 0: a resumed request continues both, a restart from byte 0 (`restart`) resets
/// both. Used by one download's task at a time, awaiting each call.
final class DownloadSink: @unchecked Sendable {
    static let batchBytes = 1 << 20

    struct State: Sendable {
        var hasher = SHA256()
        var written: UInt64 = 0
    }

    let fd: Int32
    private var state = State()
    private var batch: [ByteBuffer] = []
    private var batchBytes = 0
    private var inFlight: EventLoopFuture<State>?
    private let eventLoop = MultiThreadedEventLoopGroup.singleton.any()

    init(fd: Int32) {
        self.fd = fd
    }

    /// Bytes written and hashed; call `flush()` first to count what was gathered.
    var written: UInt64 { state.written }

    func append(_ buffer: ByteBuffer) async throws {
        guard buffer.readableBytes > 0 else { return }
        batch.append(buffer)
        batchBytes += buffer.readableBytes
        if batchBytes >= Self.batchBytes || batch.count >= VectoredFileWrite.maximumVectors { try await submit() }
    }

    /// Writes what was gathered and waits for every write: `written` is then final.
    func flush() async throws {
        if batchBytes > 0 { try await submit() }
        try await settle()
    }

    /// Starts over from byte 0 (a server answered 200 to a ranged request).
    func restart() async throws {
        batch = []
        batchBytes = 0
        try? await settle()
        state = State()
        guard ftruncate(fd, 0) == 0 else { throw CLIError("cannot truncate the download: \(String(cString: strerror(errno)))") }
    }

    /// The sha256 of the `written` bytes.
    func finalize() -> String {
        ArtifactDigest.hex(state.hasher.finalize())
    }

    private func settle() async throws {
        guard let pending = inFlight else { return }
        inFlight = nil
        state = try await pending.get()
    }

    private func submit() async throws {
        try await settle()
        let (buffers, fd, start) = (batch, fd, state)
        batch = []
        batchBytes = 0
        inFlight = NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) { () throws -> State in
            var state = start
            let outcome = VectoredFileWrite.write(buffers, to: fd, at: Int64(state.written)) { state.hasher.update(bufferPointer: $0) }
            if let code = outcome.error { throw CLIError("cannot write: \(String(cString: strerror(code)))") }
            state.written += UInt64(outcome.written)
            return state
        }
    }
}
