import GantryProtocol
import NIOCore

/// The check a log chunk passes before the coordinator stores it: it must inflate to
/// exactly the `raw_length` its header announces.
///
/// A corrupt chunk stored now would break every later read of the log, so each one is
/// inflated once before it is acknowledged (it is still stored exactly as it arrived).
/// The listener runs this on the sending connection's task, one chunk at a time per
/// connection, never inside the core's turn; `MessageValidation` has already bounded
/// `raw_length` to `WireLimits.chunkRawLength`, so one agent can make the coordinator
/// inflate at most that much per frame it sends.
public enum LogChunkCheck {
    /// Why `chunk` cannot be stored, or nil. The reason goes back to the agent.
    public static func problem(with chunk: Gantry_V1_LogChunk) -> String? {
        guard chunk.rawLength > 0, chunk.rawLength <= WireLimits.chunkRawLength else {
            return "log chunk at offset \(chunk.offset) has raw_length \(chunk.rawLength); it must be 1 to \(WireLimits.chunkRawLength)"
        }
        do {
            _ = try LogCompression.decompress(ByteBuffer(bytes: chunk.data), expectedLength: Int(chunk.rawLength))
            return nil
        } catch {
            return "log chunk at offset \(chunk.offset) was not stored: \(error)"
        }
    }
}
