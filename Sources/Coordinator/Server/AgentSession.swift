import GantryProtocol

/// The coordinator's handle on one authenticated agent connection.
///
/// The core never writes to a channel itself: it queues frames here without awaiting, and
/// the connection's writer task drains them. That keeps the actor free of suspension
/// points in the middle of a state change.
public final class AgentSession: Sendable {
    public let agentID: String
    public let outbound: AsyncStream<Gantry_V1_Envelope>
    private let continuation: AsyncStream<Gantry_V1_Envelope>.Continuation

    public init(agentID: String) {
        self.agentID = agentID
        (self.outbound, self.continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    public func send(_ envelope: Gantry_V1_Envelope) {
        continuation.yield(envelope)
    }

    /// Ends the outbound stream; the connection closes once queued frames are written.
    public func close() {
        continuation.finish()
    }
}
