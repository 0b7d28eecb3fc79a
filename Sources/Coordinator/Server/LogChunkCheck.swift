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
    /// `inflater` is the connection's own (one zlib stream reused for all its chunks).
    public static func problem(with chunk: Gantry_V1_LogChunk, inflater: LogChunkInflater) -> String? {
        guard chunk.rawLength > 0, chunk.rawLength <= WireLimits.chunkRawLength else {
            return "log chunk at offset \(chunk.offset) has raw_length \(chunk.rawLength); it must be 1 to \(WireLimits.chunkRawLength)"
        }
        do {
            try inflater.check(chunk.data, expectedLength: Int(chunk.rawLength))
            return nil
        } catch {
            return "log chunk at offset \(chunk.offset) was not stored: \(error)"
        }
    }
}

/// How many raw bytes one connection may make the coordinator inflate per second.
///
/// A token bucket: `spend` returns how long the connection's task must wait before its
/// next chunk is inflated, so an agent that sends faster than the budget is slowed down
/// (TCP pushes back on it) and no other connection notices. 256 MiB/s is above what one
/// agent's log streaming reaches (about 150 MB/s of raw output at level-1 deflate) and
/// the burst covers a reconnect resending its spool.
struct InflateBudget {
    static let bytesPerSecond = 256 * 1024 * 1024
    static let burst = 32 * 1024 * 1024

    private var available = Double(InflateBudget.burst)
    private var last: ContinuousClock.Instant?

    /// Takes `bytes` from the bucket; returns the wait before they may be inflated.
    mutating func spend(_ bytes: Int, now: ContinuousClock.Instant = .now) -> Duration {
        if let last {
            let elapsed = now - last
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            available = min(Double(Self.burst), available + seconds * Double(Self.bytesPerSecond))
        }
        last = now
        available -= Double(bytes)
        guard available < 0 else { return .zero }
        return .nanoseconds(Int64(-available / Double(Self.bytesPerSecond) * 1e9))
    }
}
