import CompressNIO
import NIOCore

/// Raw-deflates log chunks at `LogCompression.level`, reusing one zlib stream.
///
/// `LogCompression.compress` sets up and tears down a deflate state (about 270 KiB of
/// zlib's tables and window) for every chunk; an agent cuts a chunk every 100 ms of output
/// and at least one per job, so it paid that allocation per chunk. A deflater resets its
/// stream instead (`deflateReset`), so every chunk is still an independent raw-deflate
/// stream that the coordinator can store and serve on its own. Not thread-safe: one per
/// streamer (and per core when a streamer deflates on both).
public final class LogDeflater {
    private let compressor: ZlibCompressor

    public init() throws {
        compressor = try ZlibCompressor(
            algorithm: .deflate, configuration: ZlibConfiguration(compressionLevel: LogCompression.level))
    }

    /// Deflates all of `raw` into one independent raw-deflate stream.
    public func deflate(_ raw: ByteBuffer) throws -> ByteBuffer {
        var input = raw
        try compressor.reset()
        var output = ByteBufferAllocator().buffer(capacity: compressor.maxSize(from: input))
        do {
            try compressor.deflate(from: &input, to: &output, flush: .finish)
        } catch let error as CompressNIOError {
            throw ProtocolError.malformed("log chunk could not be deflated: \(error)")
        }
        return output
    }
}
