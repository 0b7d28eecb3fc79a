@testable import GantryCoordinator
import GantryProtocol
import Synchronization
import Testing

@Suite("Connection limits and bounded sessions", .timeLimit(.minutes(1)))
struct ConnectionLimitsTests {
    let configuration = ConnectionLimits.Configuration(
        maximumConnections: 10, maximumPerAddress: 6, maximumUnauthenticated: 5, maximumUnauthenticatedPerAddress: 3)

    func admit(_ limits: inout ConnectionLimits, _ address: String) -> (id: ConnectionLimits.ConnectionID, evicted: ConnectionLimits.ConnectionID?)? {
        guard case .admitted(let id, let evicting) = limits.admit(address: address) else { return nil }
        return (id, evicting)
    }

    @Test func anonymousConnectionsGetASmallShareAndTheOldestIsEvicted() throws {
        var limits = ConnectionLimits(configuration: configuration)
        var ids: [ConnectionLimits.ConnectionID] = []
        for _ in 0..<3 { ids.append(try #require(admit(&limits, "10.0.0.1")).id) }
        guard case .refused(let why) = limits.admit(address: "10.0.0.1") else {
            Issue.record("the fourth handshake from one address must be refused")
            return
        }
        #expect(why.contains("handshake"))
        ids.append(try #require(admit(&limits, "10.0.0.2")).id)
        ids.append(try #require(admit(&limits, "10.0.0.2")).id)
        // Five anonymous connections in total: the next one evicts the oldest rather than
        // being refused, so whoever holds the anonymous share cannot lock agents out.
        let third = try #require(admit(&limits, "10.0.0.3"))
        #expect(third.evicted == ids[0])
        #expect(limits.unauthenticatedConnections == 5 && limits.connections == 5)
        // Authenticated connections free their handshake share but still count in total.
        limits.authenticated(ids[1])
        #expect(limits.unauthenticatedConnections == 4)
        #expect(try #require(admit(&limits, "10.0.0.4")).evicted == nil)
    }

    @Test func recordsAreIdempotentWhateverTheOrderOfEvents() throws {
        var limits = ConnectionLimits(configuration: configuration)
        let id = try #require(admit(&limits, "10.0.0.1")).id
        limits.closed(id)
        limits.authenticated(id)  // a handshake that completes after its close changes nothing
        limits.closed(id)
        #expect(limits.connections == 0 && limits.unauthenticatedConnections == 0 && limits.addresses == 0)
        let other = try #require(admit(&limits, "10.0.0.1")).id
        limits.authenticated(other)
        limits.authenticated(other)
        #expect(limits.unauthenticatedConnections == 0 && limits.connections == 1)
    }

    @Test func totalAndPerAddressCapsHold() throws {
        var limits = ConnectionLimits(configuration: configuration)
        var fromA: [ConnectionLimits.ConnectionID] = []
        for _ in 0..<6 {
            let id = try #require(admit(&limits, "10.0.0.1")).id
            limits.authenticated(id)
            fromA.append(id)
        }
        #expect(admit(&limits, "10.0.0.1") == nil, "per-address cap")
        for index in 0..<4 { limits.authenticated(try #require(admit(&limits, "10.1.0.\(index)")).id) }
        #expect(admit(&limits, "10.2.0.1") == nil, "total cap, and nothing anonymous to evict")
        limits.closed(fromA[0])
        #expect(admit(&limits, "10.0.0.1") != nil)
    }

    @Test func ipv6PeersAreCountedPerSlash64() throws {
        var limits = ConnectionLimits(configuration: configuration)
        for suffix in ["1", "2", "abcd:1"] { _ = try #require(admit(&limits, "2001:db8:1:2::\(suffix)")) }
        #expect(admit(&limits, "2001:db8:1:2:ffff::9") == nil, "the same /64")
        #expect(admit(&limits, "2001:db8:1:3::1") != nil, "another /64")
        #expect(ConnectionLimits.key("::ffff:10.0.0.1") == "10.0.0.1")
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
