import GantryProtocol

/// What a connection to the coordinator does next, decided as a pure value type.
///
/// The agent (`AgentRuntime`) and the scaler (`Autoscaler`) keep one connection each, with
/// the same life: dial, TLS, `Hello`, wait for `Welcome` (or a refusal) within the handshake
/// deadline, heartbeat while connected and give up on a connection that has said nothing
/// for the silence limit, reconnect after a jittered backoff, stop when asked. Every one of
/// those decisions is made here, from events (with the time they happened at) to actions;
/// `AgentConnection` only performs the actions (sockets, timers, the outbound queue) and
/// feeds back what happened. Time and randomness come in from outside, so every transition
/// is a unit test without sockets or sleeps.
///
/// ```
///        start                connected              Welcome (timing in range)
/// idle ────────▶ dialing ──────────────▶ handshaking ────────────────────────▶ connected
///                  ▲  │ closed                │ Error / other first frame /     │ silent past the limit
///   backoff elapsed│  ▼                       │ bad timing / deadline passed    ▼
///                waiting ◀──── closed ──── closing(reconnect) ◀────────────── (close)
///                                          closing(give up) ──▶ failed    (fatal refusal)
///   shutdown from any state: closing(finish) ──closed──▶ finished   (waiting/idle: at once)
/// ```
public struct ConnectionStateMachine<Generator: RandomNumberGenerator & Sendable>: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Reconnect delays.
        public var backoff: Backoff
        /// TLS and the Hello/Welcome exchange must finish within this after TCP connects: a
        /// middlebox that accepts TCP but never answers must not hang the agent.
        public var handshakeTimeout: Duration
        /// The agent's own `--heartbeat-interval`; nil: the interval the `Welcome` announces.
        public var heartbeatOverride: Duration?

        public init(backoff: Backoff = Backoff(), handshakeTimeout: Duration = .seconds(10), heartbeatOverride: Duration? = nil) {
            self.backoff = backoff
            self.handshakeTimeout = handshakeTimeout
            self.heartbeatOverride = heartbeatOverride
        }
    }

    /// Why the machine asks for the connection to be closed (logged by the edge).
    public enum CloseReason: Sendable, Equatable, CustomStringConvertible {
        /// No `Welcome` within the handshake deadline.
        case handshakeTimedOut(Duration)
        /// The coordinator answered `Hello` with an `Error`.
        case refused(code: Gantry_V1_ErrorCode, message: String)
        /// The `Welcome` announced timing out of range (`CoordinatorValueChecks.timing`).
        case badWelcome(String)
        /// The first frame was neither `Welcome` nor `Error`.
        case unexpectedFirstMessage
        /// Nothing heard from the coordinator for the silence limit (it answers every
        /// heartbeat, so the path is presumed dead even if TCP has not noticed).
        case silent(Duration)
        /// The owner asked the connection to stop.
        case shutdown

        public var description: String {
            switch self {
            case .handshakeTimedOut(let limit): return "no Welcome within \(limit) of connecting"
            case .refused(let code, let message):
                return "the coordinator refused the handshake (\(code)): \(CoordinatorValueChecks.loggable(message))"
            case .badWelcome(let why): return why
            case .unexpectedFirstMessage: return "the coordinator answered the handshake with an unexpected message"
            case .silent(let limit): return "no word from the coordinator within the lease TTL (\(limit))"
            case .shutdown: return "shutting down"
            }
        }
    }

    public enum Action: Sendable, Equatable {
        case none
        /// Open a TCP + TLS connection to the coordinator.
        case dial
        /// The connection is up: send `Hello` now; the handshake must be done by `deadline`
        /// (feed `handshakeDeadlinePassed` then).
        case sendHello(deadline: ContinuousClock.Instant)
        /// The `Welcome` was accepted: open the outbound queue, heartbeat every
        /// `heartbeatInterval` (feeding `heartbeatDue`), and hand the `Welcome` to the owner.
        case startSession(Gantry_V1_Welcome, heartbeatInterval: Duration)
        /// A frame for the owner.
        case deliver(Gantry_V1_Envelope)
        case sendHeartbeat
        /// Close the connection; `connectionClosed` follows.
        case close(CloseReason)
        /// Wait `delay`, then feed `backoffElapsed`. `reason` says why the last connection
        /// ended or failed.
        case scheduleReconnect(after: Duration, reason: String)
        /// Done: the owner asked to stop and the connection is closed.
        case finish
        /// A refusal that retrying cannot fix (version, certificate, id): stop with `error`.
        case giveUp(AgentError)
    }

    enum AfterClose: Sendable, Equatable {
        case reconnect(CloseReason)
        case finish
        case giveUp(AgentError)
    }

    enum State: Sendable, Equatable {
        case idle
        /// A dial is in progress; `stopping` once the owner asked to stop meanwhile.
        case dialing(stopping: Bool)
        case handshaking(deadline: ContinuousClock.Instant)
        case connected(lastHeard: ContinuousClock.Instant, silenceLimit: Duration)
        /// A close was asked for; what follows once the connection is gone.
        case closing(AfterClose)
        case waiting
        case finished
        case failed(AgentError)
    }

    public let configuration: Configuration
    private(set) var state: State = .idle
    private var backoff: Backoff
    private var random: Generator
    /// How long one attempt may take to dial, and then to finish TLS and the handshake:
    /// the configured handshake timeout until a `Welcome` tells the lease TTL, then at most
    /// a third of it (and at least a second), so an attempt the network swallowed (a SYN or
    /// a TLS exchange into a black hole) cannot outlast the TTL and cost the agent its jobs.
    public private(set) var attemptTimeout: Duration

    public init(configuration: Configuration, random: Generator) {
        self.configuration = configuration
        self.backoff = configuration.backoff
        self.random = random
        self.attemptTimeout = configuration.handshakeTimeout
    }

    /// Whether a `Welcome` was accepted and the connection is still up.
    public var isConnected: Bool {
        if case .connected = state { return true }
        return false
    }

    // MARK: - Events

    /// The owner wants a connection (once, at start). An owner that asked to stop before
    /// starting (a signal during start-up) is finished at once.
    public mutating func start(now: ContinuousClock.Instant) -> Action {
        switch state {
        case .idle:
            state = .dialing(stopping: false)
            return .dial
        case .finished:
            return .finish
        case .failed(let error):
            return .giveUp(error)
        case .dialing, .handshaking, .connected, .closing, .waiting:
            return .none
        }
    }

    /// TCP and the channel are up (TLS runs as the first bytes flow).
    public mutating func connected(now: ContinuousClock.Instant) -> Action {
        guard case .dialing(let stopping) = state else { return .none }
        if stopping {
            state = .closing(.finish)
            return .close(.shutdown)
        }
        let deadline = now + attemptTimeout
        state = .handshaking(deadline: deadline)
        return .sendHello(deadline: deadline)
    }

    /// A frame arrived: the `Welcome` or a refusal while handshaking, anything afterwards.
    /// Every frame counts as a sign of life; a `HeartbeatAck` is nothing more.
    public mutating func received(_ envelope: Gantry_V1_Envelope, now: ContinuousClock.Instant) -> Action {
        switch state {
        case .handshaking:
            switch envelope.body {
            case .welcome(let welcome):
                let timing: (heartbeat: Duration, silenceLimit: Duration)
                do {
                    timing = try CoordinatorValueChecks.timing(of: welcome, override: configuration.heartbeatOverride)
                } catch {
                    return close(.badWelcome("\(error)"), then: .reconnect(.badWelcome("\(error)")))
                }
                backoff.reset()
                // Reconnect well within the lease TTL: the coordinator counts an agent lost
                // after one TTL without a heartbeat, so a backoff that can grow past it turns
                // a one-second network cut into lost jobs run twice. A quarter of the TTL
                // leaves time for several attempts after the network returns.
                let ttl = Duration.milliseconds(Int64(welcome.leaseTtlMs))
                backoff.maximum = max(configuration.backoff.minimum, min(configuration.backoff.maximum, ttl / 4))
                attemptTimeout = max(.seconds(1), min(configuration.handshakeTimeout, ttl / 3))
                state = .connected(lastHeard: now, silenceLimit: timing.silenceLimit)
                return .startSession(welcome, heartbeatInterval: timing.heartbeat)
            case .error(let error):
                let reason = CloseReason.refused(code: error.code, message: error.message)
                switch AgentError.handshake(error) {
                case .handshakeRefused(let why): return close(reason, then: .giveUp(.handshakeRefused(why)))
                default: return close(reason, then: .reconnect(reason))
                }
            default:
                return close(.unexpectedFirstMessage, then: .reconnect(.unexpectedFirstMessage))
            }
        case .connected(_, let silenceLimit):
            state = .connected(lastHeard: now, silenceLimit: silenceLimit)
            if case .heartbeatAck = envelope.body { return .none }
            return .deliver(envelope)
        case .idle, .dialing, .closing, .waiting, .finished, .failed:
            return .none
        }
    }

    /// The handshake deadline given with `sendHello` passed (a timer of an older connection
    /// that fires late finds a later deadline, or no handshake, and is ignored).
    public mutating func handshakeDeadlinePassed(now: ContinuousClock.Instant) -> Action {
        guard case .handshaking(let deadline) = state, now >= deadline else { return .none }
        let reason = CloseReason.handshakeTimedOut(attemptTimeout)
        return close(reason, then: .reconnect(reason))
    }

    /// A heartbeat interval passed: send one, unless the coordinator has been silent too long.
    public mutating func heartbeatDue(now: ContinuousClock.Instant) -> Action {
        guard case .connected(let lastHeard, let silenceLimit) = state else { return .none }
        if now - lastHeard > silenceLimit {
            return close(.silent(silenceLimit), then: .reconnect(.silent(silenceLimit)))
        }
        return .sendHeartbeat
    }

    /// The connection is gone (or the dial failed): `error` is what the edge saw, if anything.
    public mutating func connectionClosed(error: String?, now: ContinuousClock.Instant) -> Action {
        switch state {
        case .dialing(let stopping):
            if stopping { return finish() }
            return reconnect(reason: "connection to the coordinator failed: \(error ?? "unknown error")")
        case .handshaking:
            return reconnect(reason: "the coordinator closed the connection during the handshake" + (error.map { ": \($0)" } ?? ""))
        case .connected:
            return reconnect(reason: "connection to the coordinator ended" + (error.map { ": \($0)" } ?? ""))
        case .closing(.reconnect(let reason)):
            return reconnect(reason: "\(reason)")
        case .closing(.finish):
            return finish()
        case .closing(.giveUp(let error)):
            state = .failed(error)
            return .giveUp(error)
        case .idle, .waiting, .finished, .failed:
            return .none
        }
    }

    /// The reconnect delay is over.
    public mutating func backoffElapsed(now: ContinuousClock.Instant) -> Action {
        switch state {
        case .waiting:
            state = .dialing(stopping: false)
            return .dial
        case .finished:
            return .finish
        default:
            return .none
        }
    }

    /// The owner is done with the coordinator (the agent drained or took its one job, the
    /// scaler was stopped): close what is open and finish; never reconnect.
    public mutating func shutdownRequested(now: ContinuousClock.Instant) -> Action {
        switch state {
        case .idle, .waiting:
            return finish()
        case .dialing:
            state = .dialing(stopping: true)
            return .none
        case .handshaking, .connected, .closing(.reconnect):
            state = .closing(.finish)
            return .close(.shutdown)
        case .closing(.finish), .closing(.giveUp), .finished, .failed:
            return .none
        }
    }

    // MARK: - Helpers

    private mutating func close(_ reason: CloseReason, then next: AfterClose) -> Action {
        state = .closing(next)
        return .close(reason)
    }

    private mutating func reconnect(reason: String) -> Action {
        state = .waiting
        return .scheduleReconnect(after: backoff.next(using: &random), reason: reason)
    }

    private mutating func finish() -> Action {
        state = .finished
        return .finish
    }
}
