@testable import GantryAgent
import GantryProtocol
import Testing

/// Every transition of the connection's decisions, with the time and the jitter injected:
/// no sockets, no sleeps.
@Suite("Connection state machine", .timeLimit(.minutes(1)))
struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine<SeededGenerator>

    let t0 = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int64((seconds * 1000).rounded())) }

    static let configuration = Machine.Configuration(
        backoff: Backoff(minimum: .milliseconds(100), maximum: .seconds(5)), handshakeTimeout: .seconds(10))

    func machine(seed: UInt64 = 1, heartbeatOverride: Duration? = nil) -> Machine {
        var configuration = Self.configuration
        configuration.heartbeatOverride = heartbeatOverride
        return Machine(configuration: configuration, random: SeededGenerator(state: seed))
    }

    static func welcome(heartbeatMs: UInt32 = 500, leaseTTLMs: UInt32 = 5000) -> Gantry_V1_Welcome {
        .with {
            $0.version = ProtocolVersion.current
            $0.heartbeatIntervalMs = heartbeatMs
            $0.leaseTtlMs = leaseTTLMs
        }
    }

    static func envelope(_ welcome: Gantry_V1_Welcome) -> Gantry_V1_Envelope { .with { $0.welcome = welcome } }

    static func refusal(_ code: Gantry_V1_ErrorCode, _ message: String = "no") -> Gantry_V1_Envelope {
        .error(code, message, fatal: true)
    }

    static let lease = Gantry_V1_Envelope.with { $0.lease = .with { $0.jobID = "j" } }

    /// A machine that got a Welcome at `at(0)` (heartbeat 500 ms, silence limit 5 s).
    func connectedMachine(seed: UInt64 = 1) -> Machine {
        var machine = machine(seed: seed)
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        _ = machine.received(Self.envelope(Self.welcome()), now: at(0))
        return machine
    }

    // MARK: - Connect and handshake

    @Test func startDialsOnce() {
        var machine = machine()
        #expect(machine.start(now: at(0)) == .dial)
        #expect(machine.start(now: at(0)) == .none)
    }

    @Test func aConnectedChannelSendsHelloWithTheHandshakeDeadline() {
        var machine = machine()
        _ = machine.start(now: at(0))
        #expect(machine.connected(now: at(1)) == .sendHello(deadline: at(11)))
        #expect(!machine.isConnected)
    }

    @Test func aWelcomeStartsTheSessionWithItsHeartbeatInterval() {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        let welcome = Self.welcome(heartbeatMs: 700, leaseTTLMs: 9000)
        #expect(machine.received(Self.envelope(welcome), now: at(1)) == .startSession(welcome, heartbeatInterval: .milliseconds(700)))
        #expect(machine.isConnected)
    }

    @Test func theAgentsOwnHeartbeatIntervalOverridesTheWelcomes() {
        var machine = machine(heartbeatOverride: .milliseconds(250))
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        let welcome = Self.welcome(heartbeatMs: 5000, leaseTTLMs: 15000)
        #expect(machine.received(Self.envelope(welcome), now: at(0)) == .startSession(welcome, heartbeatInterval: .milliseconds(250)))
    }

    @Test func aWelcomeWithTimingOutOfRangeClosesAndReconnects() {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        let action = machine.received(Self.envelope(Self.welcome(heartbeatMs: .max, leaseTTLMs: .max)), now: at(0))
        guard case .close(.badWelcome(let why)) = action else {
            Issue.record("expected a close for the Welcome's timing, got \(action)")
            return
        }
        #expect(why.contains("heartbeat_interval_ms"))
        #expect(!machine.isConnected)
        guard case .scheduleReconnect(_, let reason) = machine.connectionClosed(error: nil, now: at(0)) else {
            Issue.record("expected a reconnect")
            return
        }
        #expect(reason.contains("heartbeat_interval_ms"))
    }

    @Test(arguments: [Gantry_V1_ErrorCode.unsupportedVersion, .agentIDMismatch, .certificateRequired, .badToken])
    func aFatalRefusalClosesThenGivesUp(code: Gantry_V1_ErrorCode) {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        #expect(machine.received(Self.refusal(code, "go away"), now: at(0)) == .close(.refused(code: code, message: "go away")))
        #expect(machine.connectionClosed(error: nil, now: at(0)) == .giveUp(.handshakeRefused("go away")))
        // Nothing brings it back.
        #expect(machine.backoffElapsed(now: at(10)) == .none)
        #expect(machine.start(now: at(10)) == .giveUp(.handshakeRefused("go away")))
        #expect(machine.shutdownRequested(now: at(10)) == .none)
    }

    @Test(arguments: [Gantry_V1_ErrorCode.agentIDInUse, .internal, .malformed, .unspecified])
    func aRetryableRefusalClosesThenReconnectsWithBackoff(code: Gantry_V1_ErrorCode) {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        #expect(machine.received(Self.refusal(code, "h/1 is already connected"), now: at(0)) == .close(.refused(code: code, message: "h/1 is already connected")))
        guard case .scheduleReconnect(let delay, let reason) = machine.connectionClosed(error: nil, now: at(0)) else {
            Issue.record("expected a reconnect")
            return
        }
        #expect(delay == .milliseconds(100), "the first failure waits the minimum")
        #expect(reason.contains("already connected"))
        #expect(machine.backoffElapsed(now: at(1)) == .dial)
    }

    @Test func anyOtherFirstFrameClosesAndReconnects() {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        #expect(machine.received(Self.lease, now: at(0)) == .close(.unexpectedFirstMessage))
        guard case .scheduleReconnect = machine.connectionClosed(error: nil, now: at(0)) else {
            Issue.record("expected a reconnect")
            return
        }
    }

    @Test func theHandshakeDeadlineClosesOnlyAnUnfinishedHandshake() {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        #expect(machine.handshakeDeadlinePassed(now: at(9.9)) == .none, "early: not yet")
        #expect(machine.handshakeDeadlinePassed(now: at(10)) == .close(.handshakeTimedOut(.seconds(10))))
        guard case .scheduleReconnect = machine.connectionClosed(error: "closed", now: at(10)) else {
            Issue.record("expected a reconnect")
            return
        }
        // The next connection's deadline is later: the old timer firing late changes nothing.
        _ = machine.backoffElapsed(now: at(10.1))
        _ = machine.connected(now: at(10.2))
        #expect(machine.handshakeDeadlinePassed(now: at(10.3)) == .none)
        _ = machine.received(Self.envelope(Self.welcome()), now: at(11))
        #expect(machine.handshakeDeadlinePassed(now: at(30)) == .none, "a welcomed connection has no deadline")
    }

    // MARK: - Connected

    @Test func heartbeatsGoOutWhileTheCoordinatorIsHeard() {
        var machine = connectedMachine()
        #expect(machine.heartbeatDue(now: at(0.5)) == .sendHeartbeat)
        #expect(machine.heartbeatDue(now: at(5)) == .sendHeartbeat, "exactly the limit is not silence yet")
    }

    @Test func silencePastTheLimitClosesAndReconnects() {
        var machine = connectedMachine()
        #expect(machine.heartbeatDue(now: at(5.001)) == .close(.silent(.seconds(5))))
        #expect(machine.heartbeatDue(now: at(6)) == .none, "already closing")
        guard case .scheduleReconnect(_, let reason) = machine.connectionClosed(error: nil, now: at(6)) else {
            Issue.record("expected a reconnect")
            return
        }
        #expect(reason.contains("lease TTL"))
    }

    @Test func theSilenceLimitIsAtLeastThreeHeartbeats() {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        _ = machine.received(Self.envelope(Self.welcome(heartbeatMs: 1000, leaseTTLMs: 1500)), now: at(0))
        #expect(machine.heartbeatDue(now: at(3)) == .sendHeartbeat)
        #expect(machine.heartbeatDue(now: at(3.001)) == .close(.silent(.seconds(3))))
    }

    @Test func anyFrameIsASignOfLifeAndHeartbeatAcksAreNotDelivered() {
        var machine = connectedMachine()
        #expect(machine.received(.with { $0.heartbeatAck = .init() }, now: at(4)) == .none)
        #expect(machine.heartbeatDue(now: at(8)) == .sendHeartbeat, "the ack at 4 s restarted the silence clock")
        #expect(machine.received(Self.lease, now: at(12)) == .deliver(Self.lease))
        #expect(machine.heartbeatDue(now: at(16)) == .sendHeartbeat, "the lease at 12 s did too")
        #expect(machine.heartbeatDue(now: at(17.5)) == .close(.silent(.seconds(5))))
    }

    @Test func framesAreNotDeliveredOnceAClosingIsDecided() {
        var machine = connectedMachine()
        _ = machine.heartbeatDue(now: at(20))
        #expect(machine.received(Self.lease, now: at(20)) == .none)
    }

    @Test func heartbeatsAreOnlyDueOnAWelcomedConnection() {
        var machine = machine()
        #expect(machine.heartbeatDue(now: at(0)) == .none)
        _ = machine.start(now: at(0))
        #expect(machine.heartbeatDue(now: at(0)) == .none)
        _ = machine.connected(now: at(0))
        #expect(machine.heartbeatDue(now: at(1)) == .none)
    }

    // MARK: - Reconnecting

    @Test func aDroppedSessionReconnectsAfterTheMinimumDelay() {
        var machine = connectedMachine()
        let action = machine.connectionClosed(error: "connection reset by peer", now: at(3))
        #expect(action == .scheduleReconnect(after: .milliseconds(100), reason: "connection to the coordinator ended: connection reset by peer"))
        #expect(machine.backoffElapsed(now: at(3.1)) == .dial)
    }

    @Test func aFailedDialReconnectsWithTheError() {
        var machine = machine()
        _ = machine.start(now: at(0))
        let action = machine.connectionClosed(error: "connection refused", now: at(0))
        #expect(action == .scheduleReconnect(after: .milliseconds(100), reason: "connection to the coordinator failed: connection refused"))
    }

    @Test func aCloseDuringTheHandshakeSaysSo() {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        guard case .scheduleReconnect(_, let reason) = machine.connectionClosed(error: nil, now: at(0)) else {
            Issue.record("expected a reconnect")
            return
        }
        #expect(reason.contains("during the handshake"))
    }

    /// The k-th failure in a row waits a random time in [100 ms, min(5 s, 100 ms · 2^(k−1))];
    /// a Welcome resets the count.
    @Test func consecutiveFailuresBackOffExponentiallyWithJitterUpToTheMaximum() {
        var machine = machine(seed: 42)
        _ = machine.start(now: at(0))
        var delays: [Duration] = []
        for k in 0..<12 {
            guard case .scheduleReconnect(let delay, _) = machine.connectionClosed(error: "refused", now: at(Double(k))) else {
                Issue.record("expected a reconnect")
                return
            }
            delays.append(delay)
            #expect(machine.backoffElapsed(now: at(Double(k))) == .dial)
        }
        for (k, delay) in delays.enumerated() {
            let ceiling = min(Duration.seconds(5), .milliseconds(100) * (1 << k))
            #expect(delay >= .milliseconds(100) && delay <= ceiling, "failure \(k + 1): \(delay) not in [100 ms, \(ceiling)]")
        }
        #expect(Set(delays.suffix(6)).count > 1, "jittered, not lockstep")
        #expect(delays.suffix(6).allSatisfy { $0 <= .seconds(5) })
        // A Welcome resets the count: the next drop waits the minimum again.
        _ = machine.connected(now: at(20))
        _ = machine.received(Self.envelope(Self.welcome()), now: at(20))
        #expect(machine.connectionClosed(error: nil, now: at(21)) == .scheduleReconnect(after: .milliseconds(100), reason: "connection to the coordinator ended"))
    }

    /// After a Welcome, no reconnect waits longer than a quarter of the lease TTL, so a
    /// network cut shorter than the TTL never costs the agent its jobs (the coordinator
    /// counts it lost after one TTL without a heartbeat).
    @Test func theBackoffStaysWellWithinTheLeaseTTL() {
        var machine = machine(seed: 7)
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        _ = machine.received(Self.envelope(Self.welcome(heartbeatMs: 1000, leaseTTLMs: 3000)), now: at(0))
        for k in 0..<20 {
            guard case .scheduleReconnect(let delay, _) = machine.connectionClosed(error: "refused", now: at(Double(k))) else {
                Issue.record("expected a reconnect")
                return
            }
            #expect(delay <= .milliseconds(750), "failure \(k + 1): \(delay) exceeds TTL/4")
            #expect(machine.backoffElapsed(now: at(Double(k))) == .dial)
        }
        // And one attempt (dial, TLS, handshake) may take at most a third of the TTL.
        #expect(machine.attemptTimeout == .seconds(1))
        #expect(machine.connected(now: at(30)) == .sendHello(deadline: at(31)))
    }

    @Test func theJitterComesFromTheInjectedGenerator() {
        func delays(seed: UInt64) -> [Duration] {
            var machine = machine(seed: seed)
            _ = machine.start(now: at(0))
            return (0..<8).compactMap { _ in
                guard case .scheduleReconnect(let delay, _) = machine.connectionClosed(error: "x", now: at(0)) else { return nil }
                _ = machine.backoffElapsed(now: at(0))
                return delay
            }
        }
        #expect(delays(seed: 7) == delays(seed: 7))
        #expect(delays(seed: 7) != delays(seed: 8))
    }

    @Test func backoffElapsedOnlyDialsWhileWaiting() {
        var machine = machine()
        #expect(machine.backoffElapsed(now: at(0)) == .none)
        _ = machine.start(now: at(0))
        #expect(machine.backoffElapsed(now: at(0)) == .none, "already dialing")
    }

    @Test func closedEventsOutsideAConnectionAreIgnored() {
        var machine = machine()
        #expect(machine.connectionClosed(error: nil, now: at(0)) == .none)
        _ = machine.start(now: at(0))
        _ = machine.connectionClosed(error: "x", now: at(0))
        #expect(machine.connectionClosed(error: "x", now: at(0)) == .none, "a second close while waiting")
    }

    // MARK: - Shutdown

    @Test func shutdownBeforeStartingFinishesAtOnce() {
        var machine = machine()
        #expect(machine.shutdownRequested(now: at(0)) == .finish)
        #expect(machine.start(now: at(0)) == .finish, "run() then returns at once")
    }

    @Test func shutdownWhileWaitingFinishesAndNeverRedials() {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.connectionClosed(error: "refused", now: at(0))
        #expect(machine.shutdownRequested(now: at(0.05)) == .finish)
        #expect(machine.backoffElapsed(now: at(0.1)) == .finish)
    }

    @Test func shutdownWhileDialingClosesTheConnectionOnceItIsUp() {
        var machine = machine()
        _ = machine.start(now: at(0))
        #expect(machine.shutdownRequested(now: at(0)) == .none)
        #expect(machine.connected(now: at(0.1)) == .close(.shutdown))
        #expect(machine.connectionClosed(error: nil, now: at(0.1)) == .finish)
    }

    @Test func shutdownWhileDialingFinishesWhenTheDialFails() {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.shutdownRequested(now: at(0))
        #expect(machine.connectionClosed(error: "refused", now: at(0.1)) == .finish)
    }

    @Test func shutdownDuringTheHandshakeClosesAndFinishes() {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        #expect(machine.shutdownRequested(now: at(0)) == .close(.shutdown))
        #expect(machine.received(Self.envelope(Self.welcome()), now: at(0)) == .none, "a Welcome arriving now is moot")
        #expect(machine.connectionClosed(error: nil, now: at(0)) == .finish)
    }

    @Test func shutdownWhileConnectedClosesAndFinishes() {
        var machine = connectedMachine()
        #expect(machine.shutdownRequested(now: at(1)) == .close(.shutdown))
        #expect(machine.shutdownRequested(now: at(1)) == .none, "asked twice")
        #expect(machine.heartbeatDue(now: at(2)) == .none)
        #expect(machine.connectionClosed(error: nil, now: at(2)) == .finish)
        #expect(machine.backoffElapsed(now: at(3)) == .finish)
    }

    @Test func shutdownAfterASilenceCloseFinishesInsteadOfReconnecting() {
        var machine = connectedMachine()
        _ = machine.heartbeatDue(now: at(10))
        #expect(machine.shutdownRequested(now: at(10)) == .close(.shutdown))
        #expect(machine.connectionClosed(error: nil, now: at(10)) == .finish)
    }

    @Test func aFatalRefusalIsNotTurnedIntoAFinishByAShutdown() {
        var machine = machine()
        _ = machine.start(now: at(0))
        _ = machine.connected(now: at(0))
        _ = machine.received(Self.refusal(.badToken, "bad"), now: at(0))
        #expect(machine.shutdownRequested(now: at(0)) == .none)
        #expect(machine.connectionClosed(error: nil, now: at(0)) == .giveUp(.handshakeRefused("bad")))
    }
}
