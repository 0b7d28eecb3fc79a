import GantryProtocol
import Synchronization

/// Where frames go while a connection exists. Components that produce frames (the log
/// streamers, the heartbeat) push here without awaiting; while disconnected the push
/// fails, and everything that matters (log offsets, final status) is resent after the
/// next handshake, so nothing is lost by dropping it.
final class OutboundQueue: Sendable {
    private let current = Mutex<AsyncStream<Gantry_V1_Envelope>.Continuation?>(nil)

    /// Opens a new stream for a fresh connection; the previous one (if any) ends.
    func open() -> AsyncStream<Gantry_V1_Envelope> {
        let (stream, continuation) = AsyncStream.makeStream(of: Gantry_V1_Envelope.self)
        let previous = current.withLock { value in
            defer { value = continuation }
            return value
        }
        previous?.finish()
        return stream
    }

    func close() {
        current.withLock { value in
            value?.finish()
            value = nil
        }
    }

    @discardableResult
    func send(_ envelope: Gantry_V1_Envelope) -> Bool {
        current.withLock { value in
            guard let value else { return false }
            if case .enqueued = value.yield(envelope) { return true }
            return false
        }
    }
}
