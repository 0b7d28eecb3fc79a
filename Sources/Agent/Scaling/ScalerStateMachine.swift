/// How many agent slots to run, and which to start or drain: the autoscaler's decisions
/// as a pure value type. The `Autoscaler` actor feeds it the coordinator's demand, slot
/// exits and drain answers, and carries out the actions it returns.
///
/// - **Scale-out is immediate.** Demand is `queued + running` jobs the provided agents
///   could run, clamped to `minimum...maximum`; when it rises above the target, the
///   missing slots start at once.
/// - **Scale-in waits for the cool-down.** The target only falls after demand has stayed
///   below it for `cooldown`, so a pipeline's next wave finds warm agents. Slots whose
///   one-shot agent exited after its job are restarted while the target still wants them.
/// - **Scale-in only takes idle agents.** It never stops a slot itself: it asks the
///   coordinator to drain up to N of the slots the last demand showed idle
///   (`drainIdle`), and the coordinator checks idleness and stops leasing to the agent in
///   one step. Only slots the coordinator confirmed drained are stopped (`stop`), and
///   stopping means SIGTERM, which an agent treats as "drain", never as "kill".
public struct ScalerStateMachine: Sendable {
    public struct Configuration: Sendable, Equatable {
        public var minimum: Int
        public var maximum: Int
        public var cooldown: Duration
        /// Restart delay after a slot's agent exits with a failure.
        public var crashBackoff: Duration

        public init(
            minimum: Int, maximum: Int, cooldown: Duration, crashBackoff: Duration = .seconds(5)
        ) {
            self.minimum = minimum
            self.maximum = maximum
            self.cooldown = cooldown
            self.crashBackoff = crashBackoff
        }
    }

    /// What the coordinator says about a slot's agent.
    public enum AgentState: Sendable, Equatable {
        case idle, busy, draining, disconnected
    }

    public struct Slot: Sendable, Equatable {
        public enum Phase: Sendable, Equatable {
            /// Started (or adopted), counted toward the target.
            case live
            /// The coordinator drained it; it is on its way out and no longer counted.
            case draining
        }
        public var phase: Phase
    }

    public enum Action: Sendable, Equatable {
        case start(slot: Int)
        /// Ask the coordinator to drain up to `count` of `slots`, idle ones only.
        case drainIdle(requestID: UInt32, slots: [Int], count: Int)
        /// The coordinator drained `slot`: stop it gracefully (SIGTERM / `systemctl stop`).
        case stop(slot: Int)
    }

    public let configuration: Configuration
    public private(set) var slots: [Int: Slot] = [:]
    /// The number of live slots wanted.
    public private(set) var target: Int
    public private(set) var queued = 0
    public private(set) var running = 0
    public private(set) var agents: [Int: AgentState] = [:]
    /// Whether the coordinator's demand has been heard on the current connection: without
    /// it the scaler holds still (it does not scale in on stale figures).
    public private(set) var informed = false
    private var lastNeededAt: ContinuousClock.Instant
    private var drainInFlight: (id: UInt32, candidates: [Int])?
    private var nextRequestID: UInt32 = 1
    private var restartNotBefore: ContinuousClock.Instant

    public init(configuration: Configuration, now: ContinuousClock.Instant) {
        self.configuration = configuration
        self.target = configuration.minimum
        self.lastNeededAt = now
        self.restartNotBefore = now
    }

    public var liveSlots: Int { slots.values.filter { $0.phase == .live }.count }

    /// Slots a supervisor already runs (systemd units found active at startup).
    public mutating func adopt(_ adopted: [Int]) {
        for slot in adopted where (1...configuration.maximum).contains(slot) {
            slots[slot] = Slot(phase: .live)
        }
    }

    /// A `Demand` arrived: `agents` are the states of the slots' agents the coordinator knows.
    public mutating func demandReceived(
        queued: Int, running: Int, agents: [Int: AgentState], now: ContinuousClock.Instant
    ) -> [Action] {
        self.queued = queued
        self.running = running
        self.agents = agents
        informed = true
        return reconcile(now: now)
    }

    /// The coordinator answered a `drainIdle`: these slots are draining.
    public mutating func drainAnswered(requestID: UInt32, drained: [Int], now: ContinuousClock.Instant) -> [Action] {
        guard let request = drainInFlight, request.id == requestID else { return [] }
        drainInFlight = nil
        // A candidate the coordinator did not drain was busy by then: do not ask about it
        // again until fresh demand says it is idle.
        for slot in request.candidates where !drained.contains(slot) { agents[slot] = .busy }
        var actions: [Action] = []
        for slot in drained.sorted() where slots[slot]?.phase == .live {
            slots[slot]?.phase = .draining
            actions.append(.stop(slot: slot))
        }
        return actions + reconcile(now: now)
    }

    /// A slot's process ended (only the `process` provider reports this; under systemd a
    /// one-shot agent's exit is followed by systemd's restart and the slot stays).
    public mutating func slotExited(_ slot: Int, success: Bool, now: ContinuousClock.Instant) -> [Action] {
        guard slots.removeValue(forKey: slot) != nil else { return [] }
        agents.removeValue(forKey: slot)
        // An agent exits 0 after its job whatever the job's result; anything else is the
        // agent failing (refused handshake, bad flags): do not respawn it in a tight loop.
        if !success { restartNotBefore = now + configuration.crashBackoff }
        return reconcile(now: now)
    }

    /// The connection to the coordinator dropped: an unanswered drain request is void
    /// (the coordinator may or may not have drained), and nothing scales in until fresh
    /// demand arrives.
    public mutating func disconnected() {
        drainInFlight = nil
        informed = false
    }

    /// Time passes: the cool-down may have run out, a crash backoff may have ended.
    public mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        reconcile(now: now)
    }

    private mutating func reconcile(now: ContinuousClock.Instant) -> [Action] {
        guard informed else { return [] }
        let need = min(max(queued + running, configuration.minimum), configuration.maximum)
        if need >= target {
            target = need
            lastNeededAt = now
        } else if now - lastNeededAt >= configuration.cooldown {
            target = need
        }
        var actions: [Action] = []
        var live = liveSlots
        if live < target, now >= restartNotBefore {
            // A slot number whose agent is connected but is not ours (left over from a
            // scaler that was killed) stays taken: reusing its id would cut it off mid-job.
            var free = (1...max(configuration.maximum, 1)).filter {
                slots[$0] == nil && (agents[$0] == nil || agents[$0] == .disconnected)
            }.makeIterator()
            while live < target, let slot = free.next() {
                slots[slot] = Slot(phase: .live)
                actions.append(.start(slot: slot))
                live += 1
            }
        }
        if live > target, drainInFlight == nil {
            // Highest slots first, so the fleet packs into low slot numbers.
            let idle = slots.filter { $0.value.phase == .live && agents[$0.key] == .idle }.keys.sorted(by: >)
            if !idle.isEmpty {
                let id = nextRequestID
                nextRequestID &+= 1
                drainInFlight = (id, idle)
                actions.append(.drainIdle(requestID: id, slots: idle, count: live - target))
            }
        }
        return actions
    }
}
