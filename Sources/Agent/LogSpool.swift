import NIOCore
import CGantryShims
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One attempt's log on the agent's disk, kept until the coordinator acknowledges it.
///
/// The runner appends; the streamer reads any range back with `pread`, so a reconnect can
/// resend from the last acknowledged offset without holding the log in memory.
public final class LogSpool: Sendable {
    public let path: String
    private let state: Mutex<State>

    private struct State {
        var fd: Int32
        var length: Int
        /// Bytes below this were handed back to the filesystem.
        var discarded: Int = 0
    }

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw SpoolError.io("cannot create log spool \(path): \(String(cString: strerror(errno)))")
        }
        self.state = Mutex(State(fd: fd, length: 0))
    }

    /// Raw bytes written so far.
    public var length: Int { state.withLock { $0.length } }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        try state.withLock { state in
            var written = 0
            while written < bytes.count {
                let n = pwrite(state.fd, bytes.baseAddress! + written, bytes.count - written, off_t(state.length + written))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw SpoolError.io("cannot write log spool \(path): \(String(cString: strerror(errno)))") }
                written += n
            }
            state.length += written
        }
    }

    public func append(_ text: String) throws {
        var text = text
        try text.withUTF8 { try append(UnsafeRawBufferPointer($0)) }
    }

    /// Up to `count` bytes from `offset`, read straight into a `ByteBuffer` (the type the
    /// deflater takes), without zero-filling or copying an array first.
    public func readBuffer(from offset: Int, count: Int) throws -> ByteBuffer {
        try state.withLock { state in
            let available = max(0, min(count, state.length - offset))
            var buffer = ByteBufferAllocator().buffer(capacity: available)
            var done = 0
            while done < available {
                let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: available - done) { pointer in
                    let n = pread(state.fd, pointer.baseAddress!, available - done, off_t(offset + done))
                    return max(n, 0)
                }
                if n == 0 {
                    if errno == EINTR { continue }
                    throw SpoolError.io("cannot read log spool \(path): \(String(cString: strerror(errno)))")
                }
                done += n
            }
            return buffer
        }
    }

    /// Up to `count` bytes from `offset`, as an array (for tests and tools).
    public func read(from offset: Int, count: Int) throws -> [UInt8] {
        Array(try readBuffer(from: offset, count: count).readableBytesView)
    }

    /// Frees the disk blocks of bytes the coordinator has acknowledged, keeping offsets
    /// (a hole is punched, the file size stays). Best effort: where the filesystem cannot
    /// punch holes, the bytes stay until the spool is removed.
    public func discard(upTo offset: Int) {
        state.withLock { state in
            let end = (min(offset, state.length) / 65536) * 65536
            guard end > state.discarded, state.fd >= 0 else { return }
            if gantry_punch_hole(state.fd, Int64(state.discarded), Int64(end - state.discarded)) == 0 {
                state.discarded = end
            }
        }
    }

    /// Closes and deletes the file (after the coordinator acknowledged everything).
    public func remove() {
        state.withLock { state in
            if state.fd >= 0 { close(state.fd) }
            state.fd = -1
        }
        unlink(path)
    }

    deinit {
        state.withLock { if $0.fd >= 0 { close($0.fd) } }
    }
}

public enum SpoolError: Error, CustomStringConvertible {
    case io(String)
    public var description: String {
        switch self { case .io(let text): return text }
    }
}
