import CompressNIO
import NIOCore

/// Checks that log chunks inflate to exactly the length their header announces, reusing
/// one zlib stream and one 64 KiB scratch buffer for every chunk of a connection.
///
/// `LogCompression.decompress` allocates a fresh inflate state (with its 32 KiB window)
/// and an output buffer of the whole chunk for every call; the coordinator checks every
/// chunk it receives and throws the output away, so it only needs to count. A hostile
/// chunk costs at most its announced length of inflating: the check stops as soon as the
/// output would pass it. Not thread-safe: one per connection.
public final class LogChunkInflater {
    private let decompressor: ZlibDecompressor
    private var scratch: ByteBuffer
    private var input: ByteBuffer

    public init() throws {
        decompressor = try ZlibDecompressor(algorithm: .deflate)
        scratch = ByteBufferAllocator().buffer(capacity: 64 * 1024)
        input = ByteBufferAllocator().buffer(capacity: 64 * 1024)
    }

    /// Throws `ProtocolError.malformed` unless `compressed` is one complete raw-deflate
    /// stream of exactly `expectedLength` bytes with nothing after it.
    public func check<Bytes: Collection>(_ compressed: Bytes, expectedLength: Int) throws where Bytes.Element == UInt8 {
        input.clear()
        input.writeBytes(compressed)
        try decompressor.reset()
        var produced = 0
        // Each pass fills at most the scratch buffer; the bound is the announced length's
        // worth of passes plus the final one.
        for _ in 0...(expectedLength / scratch.capacity + 1) {
            scratch.clear()
            do {
                try decompressor.inflate(from: &input, to: &scratch)
                produced += scratch.readableBytes
                guard produced <= expectedLength else {
                    throw ProtocolError.malformed("log chunk inflates to more than the \(expectedLength) bytes its header says")
                }
                guard produced == expectedLength, input.readableBytes == 0 else {
                    throw ProtocolError.malformed(
                        "log chunk inflates to \(produced) bytes, header says \(expectedLength)")
                }
                return
            } catch let error as CompressNIOError where error == .bufferOverflow {
                produced += scratch.readableBytes
                guard produced <= expectedLength else {
                    throw ProtocolError.malformed("log chunk inflates to more than the \(expectedLength) bytes its header says")
                }
            } catch let error as CompressNIOError {
                throw ProtocolError.malformed("log chunk does not inflate: \(error)")
            }
        }
        throw ProtocolError.malformed("log chunk inflates to more than the \(expectedLength) bytes its header says")
    }
}
