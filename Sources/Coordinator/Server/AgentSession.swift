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
    /// The attempts leased (or resumed) on this connection and not yet acknowledged as
    /// finished: the listener inflates only chunks for these, so a hostile agent cannot
    /// make the coordinator inflate chunks for jobs it does not hold.
    private let attempts = Mutex<Set<Attempt>>([])
    private let negotiated = Atomic<UInt32>(0)

    /// The protocol version the handshake agreed on (0 until then). Secrets go only to
    /// agents of version 3 or later: older agents ignore `Lease.secrets` and do not mask.
    public var protocolVersion: UInt32 {
        get { negotiated.load(ordering: .relaxed) }
        set { negotiated.store(newValue, ordering: .relaxed) }
    }

    struct Attempt: Hashable, Sendable {
        var jobID: String
        var attempt: UInt32
    }

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
        switch envelope.body {
        case .lease(let lease): adopt(jobID: lease.jobID, attempt: lease.attempt)
        case .finishAck(let ack): _ = attempts.withLock { $0.remove(Attempt(jobID: ack.jobID, attempt: ack.attempt)) }
        default: break
        }
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

    /// Records an attempt this connection holds without a lease sent on it (one resumed
    /// after a reconnect).
    public func adopt(jobID: String, attempt: UInt32) {
        attempts.withLock { _ = $0.insert(Attempt(jobID: jobID, attempt: attempt)) }
    }

    /// Whether this connection was leased (or resumed) that attempt and has not finished it.
    public func holds(jobID: String, attempt: UInt32) -> Bool {
        attempts.withLock { $0.contains(Attempt(jobID: jobID, attempt: attempt)) }
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
