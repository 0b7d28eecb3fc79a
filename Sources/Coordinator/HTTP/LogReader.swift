import Foundation
import GantryProtocol
import NIOCore
import NIOFoundationCompat

/// Reads a job's stored log and, when following, waits for more until the job ends.
///
/// It follows the job's current attempt: if the job is retried while being followed, a
/// marker line is written and the new attempt's log follows from its start. Waiting is
/// event-driven (`CoordinatorCore.watch`), not polled.
///
/// With `offset` (`?offset=N`, a client resuming after a lost connection) it starts at
/// byte N of the attempt it serves and stays on that attempt: it ends once that attempt's
/// log is complete (the job ended or moved to another attempt), without a marker, so the
/// client that counts the bytes it printed always knows which attempt they belong to.
struct LogReader: Sendable {
    let core: CoordinatorCore
    let jobID: String
    let follow: Bool
    /// A specific attempt's log instead of the current one (followed only with `offset`).
    var attempt: Int? = nil
    /// Where to start in the served attempt's log; non-nil pins the stream to that attempt.
    var offset: Int? = nil

    /// Whether `offset` lies within `attempt`'s stored log (its length included): one
    /// indexed read of the chunk that ends at or after it.
    static func offsetIsValid(_ offset: Int, core: CoordinatorCore, jobID: String, attempt: Int) throws -> Bool {
        if offset == 0 { return true }
        return try !core.store.logChunks(jobID: jobID, attempt: attempt, from: offset - 1, limit: 1).isEmpty
    }

    func stream(_ write: (ByteBuffer) async throws -> Void) async throws {
        // Subscribe before the first read so no append can slip between read and wait.
        let updates = follow ? await core.watch(jobID: jobID) : AsyncStream { $0.finish() }
        var iterator = updates.makeAsyncIterator()
        var current: Int?
        var offset = self.offset ?? 0
        while true {
            guard var job = try await core.job(id: jobID) else { return }
            let moved = job.attempt != attempt
            if let fixed = self.attempt { job.attempt = fixed }
            if let previous = current, previous > 0, previous != job.attempt {
                try await write(ByteBuffer(string: "\n--- gantry: attempt \(job.attempt) (previous attempt \(previous) ended: \(job.reason ?? "lost")) ---\n"))
                offset = 0
            }
            current = job.attempt
            while true {
                let chunks = try core.store.logChunks(jobID: jobID, attempt: job.attempt, from: offset)
                if chunks.isEmpty { break }
                for chunk in chunks {
                    // The stored bytes go into a ByteBuffer (CompressNIO inflates from one) with
                    // one memcpy of the compressed chunk, then inflate once into a buffer of the
                    // chunk's raw length, which is written out as is.
                    var raw = try LogCompression.decompress(ByteBuffer(data: chunk.data), expectedLength: chunk.rawLength)
                    if chunk.offset < offset { raw.moveReaderIndex(forwardBy: offset - chunk.offset) }
                    offset = chunk.offset + chunk.rawLength
                    try await write(raw)
                }
            }
            // A job is terminal only after its whole log was stored, so this was the tail.
            if !follow || job.isTerminal || (self.offset != nil && moved) { return }
            guard await iterator.next() != nil else { return }
        }
    }
}
