import GantryCoordinator
import GantryProtocol
import Synchronization
import Testing

@Suite("Connection limits and bounded sessions", .timeLimit(.minutes(1)))
struct ConnectionLimitsTests {
    let configuration = ConnectionLimits.Configuration(
        maximumConnections: 10, maximumPerAddress: 6, maximumUnauthenticated: 5, maximumUnauthenticatedPerAddress: 3)

    @Test func anonymousConnectionsGetASmallShare() {
        var limits = ConnectionLimits(configuration: configuration)
        for _ in 0..<3 { #expect(limits.admit(address: "a") == .admitted) }
        guard case .refused(let why) = limits.admit(address: "a") else {
            Issue.record("the fourth handshake from one address must be refused")
            return
        }
        #expect(why.contains("handshake"))
        #expect(limits.admit(address: "b") == .admitted)
        #expect(limits.admit(address: "b") == .admitted)
        #expect(limits.admit(address: "c") != .admitted, "five handshakes in total")
        // Authenticated connections free their handshake slot but still count in total.
        limits.authenticated(address: "a")
        #expect(limits.unauthenticatedConnections == 4 && limits.connections == 5)
        #expect(limits.admit(address: "c") == .admitted)
    }

    @Test func totalAndPerAddressCapsHoldAndCloseReleases() {
        var limits = ConnectionLimits(configuration: configuration)
        for _ in 0..<6 {
            #expect(limits.admit(address: "a") == .admitted)
            limits.authenticated(address: "a")
        }
        #expect(limits.admit(address: "a") != .admitted, "per-address cap")
        for index in 0..<4 {
            #expect(limits.admit(address: "x\(index)") == .admitted)
            limits.authenticated(address: "x\(index)")
        }
        #expect(limits.admit(address: "new") != .admitted, "total cap")
        limits.closed(address: "a", wasAuthenticated: true)
        #expect(limits.admit(address: "a") == .admitted)
        limits.closed(address: "a", wasAuthenticated: false)
        for index in 0..<4 { limits.closed(address: "x\(index)", wasAuthenticated: true) }
        for _ in 0..<5 { limits.closed(address: "a", wasAuthenticated: true) }
        #expect(limits.connections == 0 && limits.unauthenticatedConnections == 0 && limits.addresses == 0)
        // A close for an address never admitted changes nothing.
        limits.closed(address: "ghost", wasAuthenticated: false)
        #expect(limits.connections == 0)
    }

    /// An agent that stops reading is disconnected once its queue is full, instead of
    /// making the coordinator buffer every frame it is sent.
    @Test func aSessionThatIsNotReadOverflowsOnceAndEnds() async {
        let overflowed = OverflowCounter()
        let session = AgentSession(agentID: "h/1", maximumQueuedFrames: 8, onOverflow: { overflowed.increment() })
        for _ in 0..<1000 { session.send(.with { $0.heartbeatAck = .init() }) }
        #expect(overflowed.value == 1)
        var received = 0
        for await _ in session.outbound { received += 1 }
        #expect(received == 8, "the frames queued before the overflow, then the stream ends")
    }
}

final class OverflowCounter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
