import GantryProtocol
import Logging
import NIOCore
import NIOSSL

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `gantry-agent scale`: keeps the number of agent slots on a host (or in an instance
/// group) between a minimum and a maximum, following the coordinator's demand.
///
/// The scaler connects to the coordinator like an agent (same certificate, mutual TLS)
/// but with `Role.scaler`: it takes no jobs, and the coordinator pushes it `Demand` the
/// moment the queue changes, so a queued job gets a new slot within milliseconds, with
/// no polling. Decisions are `ScalerStateMachine`'s; this actor only carries them out
/// through a `SlotProvider` and the connection.
public actor Autoscaler {
    public struct Options: Sendable {
        public var coordinator: HostPort
        /// This scaler's id, `<enrolled name>/<anything>`.
        public var scalerID: String
        /// Labels of the agents the slots run: demand is counted for jobs these satisfy.
        public var labels: [String: String]
        /// Slot `n`'s agent id is `agentIDPrefix + n`.
        public var agentIDPrefix: String
        public var policy: ScalerStateMachine.Configuration
        public var backoff: Backoff
        /// How often the cool-down and crash backoff are re-checked (not a poll of the
        /// coordinator: demand is pushed).
        public var tickInterval: Duration

        public init(
            coordinator: HostPort, scalerID: String, labels: [String: String], agentIDPrefix: String,
            policy: ScalerStateMachine.Configuration, backoff: Backoff = Backoff(), tickInterval: Duration = .milliseconds(200)
        ) {
            self.coordinator = coordinator
            self.scalerID = scalerID
            self.labels = labels
            self.agentIDPrefix = agentIDPrefix
            self.policy = policy
            self.backoff = backoff
            self.tickInterval = tickInterval
        }
    }

    public let options: Options
    let tls: TLSConfiguration
    let provider: any SlotProvider
    let logger: Logger
    let outbound = OutboundQueue()
    var machine: ScalerStateMachine
    var stopping = false
    var connection: AgentChannel.Connection?
    var heartbeatInterval: Duration = .seconds(5)
    var silenceLimit: Duration = .seconds(15)
    var lastHeard = ContinuousClock.now
    var lastReported: (target: Int, live: Int)?

    public init(options: Options, tls: TLSConfiguration, provider: any SlotProvider, logger: Logger) {
        self.options = options
        self.tls = tls
        self.provider = provider
        self.logger = logger
        self.machine = ScalerStateMachine(configuration: options.policy, now: .now)
    }

    /// Runs until `stop` is called, then drains what the provider started.
    public func run() async throws {
        do {
            let existing = try await provider.existingSlots()
            if !existing.isEmpty {
                logger.info("adopting running slots", metadata: ["slots": "\(existing)"])
                machine.adopt(existing, now: .now)
            }
        } catch {
            logger.warning("could not list existing slots; assuming none", metadata: ["error": "\(error)"])
        }
        let provider = self.provider
        let exits = Task {
            for await exit in provider.exits { self.slotExited(exit) }
        }
        let interval = options.tickInterval
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                self.tick()
            }
        }
        defer {
            exits.cancel()
            ticker.cancel()
        }
        var backoff = options.backoff
        while !stopping {
            do {
                let connection = try await AgentChannel.connect(to: options.coordinator, tls: tls)
                try await session(connection) { backoff.reset() }
            } catch let error as AgentError {
                if case .handshakeRefused = error { throw error }
                logger.warning("connection to the coordinator ended", metadata: ["error": "\(error)"])
            } catch {
                logger.warning("connection to the coordinator failed", metadata: ["error": "\(error)"])
            }
            outbound.close()
            connection = nil
            machine.disconnected()
            if stopping { break }
            let delay = backoff.next()
            logger.info("reconnecting", metadata: ["in": "\(delay)"])
            try? await Task.sleep(for: delay)
        }
        logger.info("scaler stopping: draining the slots it started")
        await provider.shutdown(cancel: false)
        logger.info("scaler exiting")
    }

    /// First SIGTERM: stop scaling and drain the slots this scaler started.
    public func stop() {
        guard !stopping else { return }
        stopping = true
        connection?.channel.close(promise: nil)
    }

    /// Second SIGTERM: cancel the jobs of those slots.
    public func cancelSlots() async {
        stop()
        await provider.shutdown(cancel: true)
    }

    // MARK: - Connection

    private func session(_ connection: AgentChannel.Connection, onWelcome: () -> Void) async throws {
        let channel = connection.channel
        let handshakeTimer = channel.eventLoop.scheduleTask(in: AgentRuntime.handshakeTimeout) {
            channel.close(promise: nil)
        }
        defer { handshakeTimer.cancel() }
        try await connection.executeThenClose { inbound, writer in
            try await writer.write(.with { $0.hello = self.hello() })
            var iterator = inbound.makeAsyncIterator()
            guard let first = try await iterator.next() else {
                throw AgentError.connectionClosed("the coordinator closed the connection during the handshake")
            }
            switch first.body {
            case .welcome(let welcome):
                handshakeTimer.cancel()
                let timing = try CoordinatorValueChecks.timing(of: welcome, override: nil)
                onWelcome()
                self.connection = connection
                if stopping { return }
                (heartbeatInterval, silenceLimit) = timing
                lastHeard = .now
                logger.info(
                    "scaler connected to the coordinator",
                    metadata: [
                        "coordinator": "\(options.coordinator)", "labels": "\(options.labels)",
                        "min": "\(options.policy.minimum)", "max": "\(options.policy.maximum)",
                    ])
                let writerTask = outbound.startWriting(to: writer)
                let heartbeat = Task { await self.heartbeatLoop() }
                defer {
                    writerTask.cancel()
                    heartbeat.cancel()
                }
                while let envelope = try await iterator.next() {
                    lastHeard = .now
                    handle(envelope)
                }
            case .error(let error):
                throw AgentError.handshake(error)
            default:
                throw AgentError.connectionClosed("the coordinator answered the handshake with an unexpected message")
            }
        }
    }

    private func hello() -> Gantry_V1_Hello {
        .with {
            // Role.scaler exists from version 2 on: an older coordinator must refuse the
            // connection rather than take the scaler for an agent.
            $0.minVersion = 2
            $0.maxVersion = ProtocolVersion.current
            $0.agentID = options.scalerID
            $0.labels = options.labels
            $0.role = .scaler
            $0.hostname = ProcessInfo.processInfo.hostName
            $0.agentVersion = "gantry-agent/0.1 scale"
        }
    }

    private func heartbeatLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: heartbeatInterval)
            if Task.isCancelled { return }
            if ContinuousClock.now - lastHeard > silenceLimit {
                logger.warning("no word from the coordinator within the lease TTL; reconnecting")
                connection?.channel.close(promise: nil)
                return
            }
            outbound.send(.with { $0.heartbeat = .with { $0.sentAtUnixMs = UInt64(Date().timeIntervalSince1970 * 1000) } })
        }
    }

    private func handle(_ envelope: Gantry_V1_Envelope) {
        switch envelope.body {
        case .demand(let demand):
            var agents: [Int: ScalerStateMachine.AgentState] = [:]
            for status in demand.agents {
                guard let slot = slot(ofAgent: status.agentID) else { continue }
                switch status.state {
                case .idle: agents[slot] = .idle
                case .busy: agents[slot] = .busy
                case .draining: agents[slot] = .draining
                default: agents[slot] = .disconnected
                }
            }
            perform(machine.demandReceived(queued: Int(demand.queued), running: Int(demand.running), agents: agents, now: .now))
        case .drainIdleResult(let result):
            let drained = result.drained.compactMap(slot(ofAgent:))
            perform(machine.drainAnswered(requestID: result.requestID, drained: drained, now: .now))
        case .heartbeatAck:
            break
        case .error(let error):
            logger.warning(
                "coordinator reported an error",
                metadata: ["code": "\(error.code)", "message": "\(CoordinatorValueChecks.loggable(error.message))"])
        default:
            logger.warning("ignoring an unexpected message from the coordinator")
        }
    }

    private func slot(ofAgent id: String) -> Int? {
        guard id.hasPrefix(options.agentIDPrefix) else { return nil }
        return Int(id.dropFirst(options.agentIDPrefix.count))
    }

    // MARK: - Events and actions

    private func slotExited(_ exit: SlotExit) {
        perform(machine.slotExited(exit.slot, success: exit.success, now: .now))
    }

    private func tick() {
        guard !stopping else { return }
        perform(machine.tick(now: .now))
    }

    private func startFailed(slot: Int, error: any Error) {
        logger.error("could not start slot", metadata: ["slot": "\(slot)", "error": "\(error)"])
        perform(machine.slotExited(slot, success: false, now: .now))
    }

    private func perform(_ actions: [ScalerStateMachine.Action]) {
        guard !stopping else { return }
        let provider = self.provider
        for action in actions {
            switch action {
            case .start(let slot):
                Task {
                    do { try await provider.start(slot: slot) } catch { self.startFailed(slot: slot, error: error) }
                }
            case .drainIdle(let requestID, let slots, let count):
                logger.info("scale-in: asking the coordinator to drain idle slots", metadata: ["count": "\(count)", "candidates": "\(slots)"])
                outbound.send(
                    .with {
                        $0.drainIdle = .with {
                            $0.requestID = requestID
                            $0.agentIds = slots.map { "\(options.agentIDPrefix)\($0)" }
                            $0.count = UInt32(count)
                        }
                    })
            case .stop(let slot):
                Task {
                    do { try await provider.stop(slot: slot) } catch {
                        self.logger.error("could not stop slot", metadata: ["slot": "\(slot)", "error": "\(error)"])
                    }
                }
            }
        }
        let now = (target: machine.target, live: machine.liveSlots)
        if lastReported.map({ $0 != now }) ?? true {
            lastReported = now
            logger.info(
                "scaling", metadata: ["target": "\(now.target)", "live": "\(now.live)", "queued": "\(machine.queued)", "running": "\(machine.running)"])
        }
    }
}
