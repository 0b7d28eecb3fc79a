import GantryProtocol
import Synchronization

/// The coordinator's handle on one authenticated agent connection.
///
/// The core never writes to a channel itself: it queues frames here without awaiting, and
/// the connection's writer task drains them. That keeps the actor free of suspension
/// points in the middle of a state change.
///
/// The queue is bounded: a peer that stops reading would otherwise make the coordinator
/// buffer every frame it is sent, without limit. When more than `maximumQueuedFrames`
/// are waiting, the session ends and `onOverflow` closes the connection; the agent's jobs
/// then follow the ordinary disconnect path (its lease TTL), and nothing already
/// committed is lost.
public final class AgentSession: Sendable {
    /// Frames a healthy agent has in flight are a handful (acks, a lease, a cancel); a
    /// thousand means it has stopped reading.
    public static let defaultMaximumQueuedFrames = 1024

    public let agentID: String
    public let outbound: AsyncStream<Gantry_V1_Envelope>
    private let continuation: AsyncStream<Gantry_V1_Envelope>.Continuation
    private let queued = Atomic<Int>(0)
    private let maximumQueuedFrames: Int
    private let onOverflow: @Sendable () -> Void

    public init(
        agentID: String, maximumQueuedFrames: Int = AgentSession.defaultMaximumQueuedFrames,
        onOverflow: @escaping @Sendable () -> Void = {}
    ) {
        self.agentID = agentID
        self.maximumQueuedFrames = maximumQueuedFrames
        self.onOverflow = onOverflow
        (self.outbound, self.continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    public func send(_ envelope: Gantry_V1_Envelope) {
        let waiting = queued.add(1, ordering: .relaxed).newValue
        if waiting > maximumQueuedFrames {
            if waiting == maximumQueuedFrames + 1 {
                continuation.finish()
                onOverflow()
            }
            return
        }
        continuation.yield(envelope)
    }

    /// The writer took a frame off the queue.
    public func dequeued() {
        queued.subtract(1, ordering: .relaxed)
    }

    /// Frames queued and not yet taken by the writer.
    public var queuedFrames: Int { queued.load(ordering: .relaxed) }

    /// Ends the outbound stream; the connection closes once queued frames are written.
    public func close() {
        continuation.finish()
    }
}
