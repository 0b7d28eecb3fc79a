import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a batch of received buffers into a file with `pwritev`: one system call for
/// what arrived in many socket reads, without copying the buffers into one. The one write
/// path of artifact bytes as they arrive: the coordinator's part files, the CLI's and the
/// agent's downloads: a buffered write has a fixed cost per call (the inode lock,
/// timestamps, dirty-page accounting) and each batch is one trip to a thread pool, so
/// both are paid once per batch instead of once per TLS read of a few dozen KiB. (The
/// copy into the page cache itself stays: about 0.3-0.9 CPU-s per GiB on the bench VM.)
public enum VectoredFileWrite {
    public struct Outcome: Sendable, Equatable {
        /// Bytes of the buffers written whole, from the first: a write that fails part-way
        /// counts only the buffers before the one it failed in.
        public var written: Int64
        /// `errno` of the call that failed, nil if every byte was written.
        public var error: Int32?

        public init(written: Int64, error: Int32?) {
            self.written = written
            self.error = error
        }
    }

    /// At most this many buffers per call (`IOV_MAX` is 1024 on Linux and Darwin).
    public static let maximumVectors = 1024

    /// Writes `buffers` in order at `offset` of `fd`, then calls `written` with the bytes of
    /// each buffer written whole, in order (to hash them).
    public static func write(
        _ buffers: [ByteBuffer], to fd: Int32, at offset: Int64, written: (UnsafeRawBufferPointer) -> Void = { _ in }
    ) -> Outcome {
        withExtendedLifetime(buffers) {
            // The array keeps every buffer's storage alive and unmodified for the whole call,
            // so their base addresses stay valid (as NIO's own vector writes rely on).
            var pieces: [UnsafeRawBufferPointer] = []
            pieces.reserveCapacity(buffers.count)
            for buffer in buffers where buffer.readableBytes > 0 {
                buffer.withUnsafeReadableBytesWithStorageManagement { bytes, _ in pieces.append(bytes) }
            }
            var done = 0
            var failure: Int32?
            let total = pieces.reduce(0) { $0 + $1.count }
            var vectors: [iovec] = []
            vectors.reserveCapacity(min(pieces.count, maximumVectors))
            // Where byte `done` falls: the piece and the offset in it. Moved forward as bytes
            // are written, never rescanned from the first piece (a body of a million 1-byte
            // chunks would otherwise cost a million steps per call).
            var cursor = 0
            var cursorOffset = 0
            while done < total {
                // The vectors from byte `done` on: the piece it falls in, cut, then whole ones.
                vectors.removeAll(keepingCapacity: true)
                var index = cursor
                var skip = cursorOffset
                while index < pieces.count, vectors.count < maximumVectors {
                    let rest = UnsafeRawBufferPointer(rebasing: pieces[index][skip...])
                    skip = 0
                    index += 1
                    vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: rest.baseAddress), iov_len: rest.count))
                }
                let count = vectors.withUnsafeBufferPointer {
                    pwritev(fd, $0.baseAddress, Int32($0.count), off_t(offset) + off_t(done))
                }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else {
                    failure = count < 0 ? errno : EIO
                    break
                }
                done += count
                var advanced = count + cursorOffset
                while cursor < pieces.count, advanced >= pieces[cursor].count {
                    advanced -= pieces[cursor].count
                    cursor += 1
                }
                cursorOffset = advanced
            }
            var whole = 0
            for piece in pieces {
                guard whole + piece.count <= done else { break }
                written(piece)
                whole += piece.count
            }
            return Outcome(written: Int64(whole), error: failure)
        }
    }
}
