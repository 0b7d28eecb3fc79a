import GantryProtocol
import NIOCore

/// The pieces of an upload's body gathered until they are worth a trip to the thread pool
/// (`BlobStore.batchBytes`): the buffers themselves, never a copy of their bytes. A pure
/// value: the route appends what arrives and writes what `take()` returns.
struct PartBatch {
    let limit: Int
    private(set) var buffers: [ByteBuffer] = []
    private(set) var bytes = 0

    init(limit: Int = BlobStore.batchBytes) {
        self.limit = limit
    }

    var isEmpty: Bool { bytes == 0 }

    /// Adds `buffer`; true once the batch holds at least `limit` bytes and should be written.
    mutating func append(_ buffer: ByteBuffer) -> Bool {
        if buffer.readableBytes > 0 {
            buffers.append(buffer)
            bytes += buffer.readableBytes
        }
        // Bounded by count too: a chunked body of 1-byte chunks arrives as one buffer per
        // chunk, and a million of them would hold ~45 MiB for 1 MiB of payload.
        return bytes >= limit || buffers.count >= VectoredFileWrite.maximumVectors
    }

    /// The gathered buffers, in order; the batch is empty afterwards.
    mutating func take() -> [ByteBuffer] {
        let taken = buffers
        buffers = []
        bytes = 0
        return taken
    }
}
