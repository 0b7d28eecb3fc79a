import GantryProtocol
import Logging
import NIOCore
import NIOSSL

/// What a connection to the coordinator needs from the one it serves (`AgentRuntime`,
/// `Autoscaler`), and what it tells it.
protocol AgentConnectionOwner: Actor {
    /// The `Hello` for a new connection (an agent lists the attempts it still holds).
    func hello() async -> Gantry_V1_Hello
    /// The coordinator accepted the `Hello`; from now until `disconnected()` frames sent
    /// through the connection's `outbound` queue go out. `connectedIn` is how long TCP
    /// connect and channel set-up took.
    func connected(_ welcome: Gantry_V1_Welcome, connectedIn: Duration) async
    /// A frame from the coordinator other than the handshake and heartbeat acks.
    func received(_ envelope: Gantry_V1_Envelope) async
    /// The heartbeat to send now.
    func heartbeat() async -> Gantry_V1_Heartbeat
    /// The connection that `connected` announced is gone.
    func disconnected() async
}

/// Keeps one connection to the coordinator for its owner: dial, `Hello`, `Welcome`,
/// heartbeats, silence detection, reconnect with backoff, stop. Every decision is
/// `ConnectionStateMachine`'s; this actor performs them (the socket, the timers, the
/// outbound queue) and feeds back what happened, with the time.
actor AgentConnection {
    /// Every address of the coordinators; dialled in turn, moving on after each connection.
    let coordinators: [HostPort]
    private var nextCoordinator = 0
    /// The address of the connection now (or the last one dialled).
    var coordinator: HostPort { coordinators[(nextCoordinator + coordinators.count - 1) % coordinators.count] }
    private(set) var tls: TLSConfiguration
    /// Reads the host's key and certificate again before each dial (a renewal replaces
    /// them); nil keeps `tls`.
    let reloadTLS: (@Sendable () throws -> TLSConfiguration)?
    let logger: Logger
    /// Frames the owner sends (log chunks, status, heartbeats); open only while connected.
    nonisolated let outbound = OutboundQueue()
    private var machine: ConnectionStateMachine<SystemRandomNumberGenerator>
    private var channel: Channel?
    private var reconnectDelay: Task<Void, Never>?

    init(
        coordinators: [HostPort], tls: TLSConfiguration, reloadTLS: (@Sendable () throws -> TLSConfiguration)? = nil,
        configuration: ConnectionStateMachine<SystemRandomNumberGenerator>.Configuration, logger: Logger
    ) {
        precondition(!coordinators.isEmpty, "an agent needs a coordinator address")
        self.coordinators = coordinators
        self.tls = tls
        self.reloadTLS = reloadTLS
        self.logger = logger
        self.machine = ConnectionStateMachine(configuration: configuration, random: SystemRandomNumberGenerator())
    }

    /// Connects and stays connected (reconnecting as needed) until `shutdown()`; throws
    /// when the coordinator refuses the handshake for good.
    func run(for owner: some AgentConnectionOwner) async throws {
        var next = machine.start(now: .now)
        while true {
            switch next {
            case .dial:
                next = await connectOnce(for: owner)
            case .scheduleReconnect(let delay, let reason):
                logger.warning("\(reason)")
                logger.info("reconnecting", metadata: ["in": "\(delay)"])
                let sleeper = Task<Void, Never> { try? await Task.sleep(for: delay) }
                reconnectDelay = sleeper
                await sleeper.value
                reconnectDelay = nil
                next = machine.backoffElapsed(now: .now)
            case .finish:
                return
            case .giveUp(let error):
                throw error
            case .none, .sendHello, .startSession, .deliver, .sendHeartbeat, .close:
                // Only the four above come out of `start`, a finished connection or a backoff.
                logger.error("connection: no next step after \(next); stopping")
                return
            }
        }
    }

    /// Stop for good: close the connection if there is one, never reconnect. `run` returns
    /// once the connection is gone.
    func shutdown() {
        switch machine.shutdownRequested(now: .now) {
        case .close:
            close()
        case .finish:
            reconnectDelay?.cancel()
        default:
            break
        }
    }

    // MARK: - One connection

    /// Dials, runs the connection until it closes, and returns what to do next.
    private func connectOnce(for owner: some AgentConnectionOwner) async -> ConnectionStateMachine<SystemRandomNumberGenerator>.Action {
        let started = ContinuousClock.now
        if let reloadTLS {
            do {
                tls = try reloadTLS()
            } catch {
                logger.warning("cannot read the host's certificate again; using the one read before", metadata: ["error": "\(error)"])
            }
        }
        let connection: AgentChannel.Connection
        let target = coordinators[nextCoordinator % coordinators.count]
        nextCoordinator = (nextCoordinator + 1) % coordinators.count
        do {
            let timeout = machine.attemptTimeout.components
            connection = try await AgentChannel.connect(
                to: target, tls: tls,
                connectTimeout: .nanoseconds(timeout.seconds * 1_000_000_000 + timeout.attoseconds / 1_000_000_000))
        } catch {
            return machine.connectionClosed(error: "\(error)", now: .now)
        }
        let connectedIn = ContinuousClock.now - started
        var failure: (any Error)?
        var sessionStarted = false
        do {
            try await connection.executeThenClose { inbound, writer in
                channel = connection.channel
                defer { channel = nil }
                switch machine.connected(now: .now) {
                case .sendHello(let deadline):
                    try await withThrowingTaskGroup(of: Void.self) { timers in
                        // Armed first: TLS runs as the Hello goes out, and neither may hang.
                        timers.addTask {
                            try await Task.sleep(until: deadline, clock: .continuous)
                            await self.handshakeDeadlinePassed()
                        }
                        let hello = await owner.hello()
                        try await writer.write(.with { $0.hello = hello })
                        for try await envelope in inbound {
                            switch machine.received(envelope, now: .now) {
                            case .startSession(let welcome, let interval):
                                sessionStarted = true
                                // Opened here, before the owner hears of the Welcome, so that
                                // nothing it sends in answer is dropped.
                                let frames = outbound.open()
                                timers.addTask {
                                    for await frame in frames {
                                        do { try await writer.write(frame) } catch { break }
                                    }
                                }
                                timers.addTask { try await self.heartbeats(every: interval, for: owner) }
                                await owner.connected(welcome, connectedIn: connectedIn)
                            case .deliver(let envelope):
                                await owner.received(envelope)
                            case .close(let reason):
                                log(reason)
                                close()
                            default:
                                break
                            }
                        }
                        timers.cancelAll()
                    }
                case .close(let reason):
                    log(reason)
                default:
                    break
                }
            }
        } catch {
            failure = error
        }
        outbound.close()
        if sessionStarted { await owner.disconnected() }
        return machine.connectionClosed(error: failure.map { "\($0)" }, now: .now)
    }

    private func heartbeats(every interval: Duration, for owner: some AgentConnectionOwner) async throws {
        while true {
            try await Task.sleep(for: interval)
            guard heartbeatDue() else { continue }
            let heartbeat = await owner.heartbeat()
            outbound.send(.with { $0.heartbeat = heartbeat })
        }
    }

    /// Whether a heartbeat should go out now (false: not connected, or closed for silence).
    private func heartbeatDue() -> Bool {
        switch machine.heartbeatDue(now: .now) {
        case .sendHeartbeat:
            return true
        case .close(let reason):
            log(reason)
            close()
            return false
        default:
            return false
        }
    }

    private func handshakeDeadlinePassed() {
        if case .close(let reason) = machine.handshakeDeadlinePassed(now: .now) {
            log(reason)
            close()
        }
    }

    private func close() {
        outbound.close()
        channel?.close(promise: nil)
    }

    /// The reason is logged again, as a warning, with the reconnect that follows.
    private func log(_ reason: ConnectionStateMachine<SystemRandomNumberGenerator>.CloseReason) {
        logger.debug("closing the connection to the coordinator", metadata: ["why": "\(reason)"])
    }
}
