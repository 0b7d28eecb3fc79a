import Foundation
import GantryProtocol

/// Who runs what: matches queued jobs to ready agents, tracks leases, and decides when an
/// agent is lost. A pure value type: every method takes an event and returns the actions
/// to carry out, so every dispatch and failure path is a fast unit test. The
/// `CoordinatorCore` actor owns one, persists what the actions imply, and does the I/O.
///
/// Dispatch is push: a job is leased the moment it is enqueued if a ready agent matches,
/// or the moment a matching agent says it is ready. Nothing polls.
public struct Scheduler: Sendable {
    public struct Configuration: Sendable {
        /// How long an agent may be silent (no heartbeat, no connection) before its leases
        /// are declared lost.
        public var leaseTTL: Duration
        public init(leaseTTL: Duration) { self.leaseTTL = leaseTTL }
    }

    public struct Agent: Sendable, Equatable {
        public var id: String
        public var labels: [String: String]
        public var capacity: Int
        public var oneShot: Bool
        public var connected: Bool
        /// Slots the agent has announced with `Ready` and not yet been leased into.
        public var readySlots: Int
        public var leasesGranted: Int
        public var draining: Bool
        public var lastSeen: ContinuousClock.Instant
        public var running: Set<String>
        /// The protocol version negotiated at its handshake: a job whose lease uses newer
        /// fields is never matched to it (`QueuedJob.minimumProtocol`).
        public var protocolVersion: UInt32 = ProtocolVersion.current

        public enum State: String, Sendable, CaseIterable {
            case idle, busy, draining, disconnected
        }

        public var state: State {
            if !connected { return .disconnected }
            if draining { return .draining }
            return running.isEmpty ? .idle : .busy
        }

        /// One-shot agents take one job in their lifetime, whatever they announce later.
        var canTakeMore: Bool {
            connected && !draining && readySlots > 0 && running.count < capacity && !(oneShot && leasesGranted > 0)
        }
    }

    public struct QueuedJob: Sendable, Equatable {
        public var id: String
        public var selector: [String: String]
        /// `priority:`; higher is leased first.
        public var priority: Int
        /// When the job became runnable (`StoredJob.sequence`); lower is leased first
        /// among equal priorities.
        public var sequence: Int
        /// The oldest protocol version an agent must speak to run the job's lease as
        /// written (`Gantry_V1_Lease.minimumProtocolVersion`).
        public var minimumProtocol: UInt32

        public init(
            id: String, selector: [String: String], priority: Int = 0, sequence: Int = 0,
            minimumProtocol: UInt32 = ProtocolVersion.minimum
        ) {
            self.id = id
            self.selector = selector
            self.priority = priority
            self.sequence = sequence
            self.minimumProtocol = minimumProtocol
        }

        /// Whether `agent` may run it: its labels match and it speaks the lease's version.
        func fits(_ agent: Agent) -> Bool {
            agent.protocolVersion >= minimumProtocol && Scheduler.matches(selector: selector, labels: agent.labels)
        }

        /// Whether this job is leased before `other`: higher priority, then older.
        func precedes(_ other: QueuedJob) -> Bool {
            priority != other.priority ? priority > other.priority : sequence < other.sequence
        }
    }

    public enum Action: Sendable, Equatable {
        /// Lease `job` to `agent` (the coordinator bumps the attempt and sends `Lease`).
        case lease(job: String, agent: String)
        /// The agent holding `job` went silent past the TTL.
        case lost(job: String, agent: String)
        /// The agent went silent past the TTL: forget it, close its connection if any.
        case forgetAgent(String)
    }

    public let configuration: Configuration
    /// Every agent known, connected or waiting out its TTL.
    public var agents: [String: Agent] { table.byID }
    private(set) var table = AgentTable()
    /// Jobs waiting for an agent, in the order they are leased: priority, then age. An
    /// agent that says `Ready` takes the first one its labels match.
    public private(set) var queue: [QueuedJob] = []
    /// Job id → agent id for every leased or running job, including jobs reloaded after a
    /// coordinator restart whose agent has not reconnected yet. This is the one place that
    /// says which agent holds a job; `Agent.running` is its inverse, kept by the same
    /// methods. (`StoredJob.agentId` is the persisted record of the last holder.)
    public private(set) var leases: [String: String] = [:]

    /// The agent that holds `job` now, if any.
    public func holder(of job: String) -> String? { leases[job] }

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    // MARK: - Agents

    /// An agent completed its handshake. `held` are the jobs it says it still runs, already
    /// checked against the store by the caller. Jobs this scheduler had leased to the same
    /// agent id that it no longer holds are lost at once: the process restarted (say,
    /// systemd's `Restart=always` after a crash) and its copy is gone, so waiting for the
    /// TTL would leave them "running" behind a live, heartbeating agent.
    @discardableResult
    public mutating func agentConnected(
        id: String, labels: [String: String], capacity: Int, oneShot: Bool, held: [String],
        protocolVersion: UInt32 = ProtocolVersion.current, now: ContinuousClock.Instant
    ) -> [Action] {
        var actions: [Action] = []
        let previous = table[id]
        for job in (previous?.running ?? []).subtracting(held).sorted() {
            leases.removeValue(forKey: job)
            actions.append(.lost(job: job, agent: id))
        }
        let agent = Agent(
            id: id, labels: labels, capacity: max(capacity, 1), oneShot: oneShot, connected: true, readySlots: 0,
            leasesGranted: held.isEmpty ? 0 : 1, draining: false, lastSeen: now, running: Set(held),
            protocolVersion: protocolVersion)
        for job in held { leases[job] = id }
        table[id] = agent
        return actions
    }

    /// The agent can take `slots` more jobs.
    public mutating func agentReady(id: String, slots: Int, now: ContinuousClock.Instant) -> [Action] {
        guard var agent = table[id], agent.connected else { return [] }
        agent.readySlots = max(0, min(slots, agent.capacity - agent.running.count))
        agent.lastSeen = now
        table[id] = agent
        return dispatch(toAgent: id)
    }

    public mutating func agentSeen(id: String, now: ContinuousClock.Instant) {
        table[id]?.lastSeen = now
    }

    /// The agent asked to drain, or an operator drained it: lease it nothing more.
    public mutating func agentDraining(id: String) {
        table[id]?.draining = true
        table[id]?.readySlots = 0
    }

    /// Scale-in: drains up to `count` of `candidates` that are idle at this moment, and
    /// returns them. Checking idleness and marking the agent draining is one step of this
    /// value type, and the coordinator applies it in one step of its single writer: a job
    /// enqueued at the same moment is either leased first (the agent is busy and stays) or
    /// after (never to the drained agent). So scale-in cannot take a busy agent.
    public mutating func drainIdle(candidates: [String], count: Int) -> [String] {
        var drained: [String] = []
        for id in candidates where drained.count < count {
            guard table[id]?.state == .idle else { continue }
            agentDraining(id: id)
            drained.append(id)
        }
        return drained
    }

    /// The connection dropped. Its leases stay until the TTL runs out, so a reconnect
    /// within the TTL resumes instead of restarting.
    public mutating func agentDisconnected(id: String, now: ContinuousClock.Instant) {
        guard var agent = table[id] else { return }
        agent.connected = false
        agent.readySlots = 0
        agent.lastSeen = now
        table[id] = agent
    }

    // MARK: - Jobs

    /// A job became runnable. A ready agent that matches takes it at once: none of the
    /// queued jobs can match that agent, or it would not be idle. Otherwise it is queued
    /// behind every job that precedes it (binary search; equal jobs keep arrival order).
    public mutating func enqueue(_ job: QueuedJob) -> [Action] {
        if let agent = table.firstAvailable(matching: job.selector, minimumProtocol: job.minimumProtocol) {
            return [grant(job: job.id, to: agent)]
        }
        var low = queue.startIndex
        var high = queue.endIndex
        while low < high {
            let middle = (low + high) / 2
            if job.precedes(queue[middle]) { high = middle } else { low = middle + 1 }
        }
        queue.insert(job, at: low)
        return []
    }

    /// A job left the queue without being leased (cancelled).
    public mutating func dequeue(job id: String) -> Bool {
        guard let index = queue.firstIndex(where: { $0.id == id }) else { return false }
        queue.remove(at: index)
        return true
    }

    /// Removes many jobs from the queue in one pass (a pipeline cancel), instead of one
    /// scan of the queue per job.
    public mutating func dequeue(jobs ids: Set<String>) {
        guard !ids.isEmpty else { return }
        queue.removeAll { ids.contains($0.id) }
    }

    /// A leased job was adopted after a coordinator restart; its agent has a TTL to return.
    public mutating func adoptLease(job: String, agent: String, now: ContinuousClock.Instant) {
        leases[job] = agent
        if table[agent] == nil {
            table[agent] = Agent(
                id: agent, labels: [:], capacity: 1, oneShot: false, connected: false, readySlots: 0,
                leasesGranted: 1, draining: false, lastSeen: now, running: [job])
        } else {
            table[agent]?.running.insert(job)
        }
    }

    /// The lease ended (finished, refused, cancelled or lost). The agent's slot is not
    /// reusable until it says `Ready` again.
    public mutating func release(job: String) {
        guard let agent = leases.removeValue(forKey: job) else { return }
        table[agent]?.running.remove(job)
    }

    /// Periodic check (at least once a second): agents silent past the TTL are forgotten
    /// and everything they held is lost.
    public mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        for (id, agent) in agents where now - agent.lastSeen > configuration.leaseTTL {
            for job in agent.running.sorted() {
                leases.removeValue(forKey: job)
                actions.append(.lost(job: job, agent: id))
            }
            table.removeValue(forKey: id)
            actions.append(.forgetAgent(id))
        }
        return actions
    }

    // MARK: - Matching

    static func matches(selector: [String: String], labels: [String: String]) -> Bool {
        selector.allSatisfy { labels[$0.key] == $0.value }
    }

    private mutating func dispatch(toAgent id: String) -> [Action] {
        var actions: [Action] = []
        while let agent = table[id], agent.canTakeMore,
            let index = queue.firstIndex(where: { $0.fits(agent) })
        {
            let job = queue.remove(at: index)
            actions.append(grant(job: job.id, to: id))
        }
        return actions
    }

    private mutating func grant(job: String, to agentID: String) -> Action {
        table[agentID]?.readySlots -= 1
        table[agentID]?.leasesGranted += 1
        table[agentID]?.running.insert(job)
        leases[job] = agentID
        return .lease(job: job, agent: agentID)
    }
}
