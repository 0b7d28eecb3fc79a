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
/// no polling. Decisions are `ScalerStateMachine`'s (and the connection's own,
/// `ConnectionStateMachine`'s, shared with the agent); this actor only carries them out
/// through a `SlotProvider` and its `AgentConnection`.
public actor Autoscaler: AgentConnectionOwner {
    public struct Options: Sendable {
        public var coordinator: HostPort
        /// Further coordinators sharing the database, dialled in turn like the agent's.
        public var alternateCoordinators: [HostPort] = []
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
    let provider: any SlotProvider
    let logger: Logger
    let connection: AgentConnection
    var outbound: OutboundQueue { connection.outbound }
    var machine: ScalerStateMachine
    var stopping = false
    var lastReported: (target: Int, live: Int)?

    /// `reloadTLS` is called before each connection: the scaler shares the host's
    /// certificate, which the host's agents renew.
    public init(
        options: Options, tls: TLSConfiguration, reloadTLS: (@Sendable () throws -> TLSConfiguration)? = nil,
        provider: any SlotProvider, logger: Logger
    ) {
        self.options = options
        self.provider = provider
        self.logger = logger
        self.connection = AgentConnection(
            coordinators: [options.coordinator] + options.alternateCoordinators, tls: tls, reloadTLS: reloadTLS,
            configuration: .init(backoff: options.backoff),
            logger: logger)
        self.machine = ScalerStateMachine(configuration: options.policy, now: .now)
    }

    /// Runs until `stop` is called, then drains what the provider started.
    public func run() async throws {
        do {
            let existing = try await provider.existingSlots()
            if !existing.isEmpty {
                logger.info("adopting running slots", metadata: ["slots": "\(existing)"])
                machine.adopt(existing)
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
        try await connection.run(for: self)
        logger.info("scaler stopping: draining the slots it started")
        await provider.shutdown(cancel: false)
        logger.info("scaler exiting")
    }

    /// First SIGTERM: stop scaling and drain the slots this scaler started.
    public func stop() async {
        guard !stopping else { return }
        stopping = true
        await connection.shutdown()
    }

    /// Second SIGTERM: cancel the jobs of those slots.
    public func cancelSlots() async {
        await stop()
        await provider.shutdown(cancel: true)
    }

    // MARK: - Connection

    func connected(_ welcome: Gantry_V1_Welcome, connectedIn: Duration) {
        logger.info(
            "scaler connected to the coordinator",
            metadata: [
                "coordinator": "\(options.coordinator)", "labels": "\(options.labels)",
                "min": "\(options.policy.minimum)", "max": "\(options.policy.maximum)",
            ])
    }

    /// An unanswered drain request is void and nothing scales in until fresh demand.
    func disconnected() {
        machine.disconnected()
    }

    func hello() -> Gantry_V1_Hello {
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

    func heartbeat() -> Gantry_V1_Heartbeat {
        .with { $0.sentAtUnixMs = UInt64(Date().timeIntervalSince1970 * 1000) }
    }

    func received(_ envelope: Gantry_V1_Envelope) {
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
