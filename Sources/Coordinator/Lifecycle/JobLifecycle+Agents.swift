import Foundation
import GantryProtocol
import Logging

extension JobLifecycle {
    /// Why a handshake was refused.
    public struct Refusal: Error, Sendable, Equatable {
        public var code: Gantry_V1_ErrorCode
        public var message: String
    }

    /// An accepted handshake.
    public struct Connection: Sendable, Equatable {
        /// What the agent should do with each attempt it said it holds.
        public var resume: [Gantry_V1_Resume]
        /// The agent id had a live connection, which this one replaces: close that first.
        public var replacesLiveConnection: Bool
        public var output: LifecycleOutput
    }

    /// An agent completed its handshake (its message and certificate already checked).
    ///
    /// A genuine reconnect comes from the same agent process (`instance` matches) or from
    /// one whose old connection went silent (a network cut not noticed yet); an agent that
    /// is done (one-shot with its job finished, or drained) and holds nothing may be
    /// replaced at once, because an ephemeral slot's next process reuses the id. A live,
    /// heartbeating connection claimed by another process means two agents share the id:
    /// the newcomer is refused, or the two would take each other's connection and jobs
    /// could run twice.
    public mutating func agentConnected(
        _ hello: Gantry_V1_Hello, now: ContinuousClock.Instant, wallClock: Date
    ) -> Result<Connection, Refusal> {
        let agentID = hello.agentID
        let live = scheduler.agents[agentID]?.connected == true
        if live {
            let known = agentInfo[agentID]
            let silence = known.map { now - $0.lastHeard } ?? .seconds(0)
            let sameProcess = !hello.instance.isEmpty && known?.instance == hello.instance
            let exiting =
                scheduler.agents[agentID].map {
                    $0.running.isEmpty && (($0.oneShot && $0.leasesGranted > 0) || $0.draining)
                } ?? false
            guard sameProcess || exiting || silence >= configuration.takeoverSilence else {
                return .failure(
                    Refusal(
                        code: .agentIDInUse,
                        message: "agent id '\(agentID)' is already connected and heartbeating: is another agent on this "
                            + "host running with the same --slot? Give each agent a distinct --slot. (A reconnect of the "
                            + "same agent is accepted once its old connection has missed its heartbeats.)"))
            }
        }
        var turn = LifecycleOutput()
        var resume: [Gantry_V1_Resume] = []
        var held: [String] = []
        for attempt in hello.held {
            let job = jobs[attempt.jobID]
            let current =
                job.map {
                    $0.attempt == Int(attempt.attempt) && $0.state.isHeld && scheduler.holder(of: $0.id) == agentID
                } ?? false
            resume.append(
                .with {
                    $0.jobID = attempt.jobID
                    $0.attempt = attempt.attempt
                    $0.logOffset = UInt64(job?.logLength ?? 0)
                    $0.abort = !current
                })
            if current { held.append(attempt.jobID) }
        }
        let abandoned = scheduler.agentConnected(
            id: agentID, labels: hello.labels, capacity: Int(max(hello.capacity, 1)), oneShot: hello.oneShot,
            held: held,
            // The core refused a Hello without a common version before this event; a range
            // that does not negotiate here is taken as the oldest, the safe side.
            protocolVersion: ProtocolVersion.negotiate(peerMinimum: hello.minVersion, peerMaximum: hello.maxVersion)
                ?? ProtocolVersion.minimum,
            now: now)
        lostAgents.removeValue(forKey: agentID)
        agentInfo[agentID] = AgentInfo(
            hostname: hello.hostname, labels: hello.labels, lastSeenAt: wallClock, lastHeard: now, instance: hello.instance)
        apply(abandoned, now: wallClock, into: &turn)
        for jobID in held {
            if let job = jobs[jobID], let reason = job.cancelReason { turn.send(Self.cancelFrame(job, reason: reason), to: agentID) }
        }
        turn.actions.append(.demandChanged)
        turn.log(
            .info, live ? "agent reconnected; closing its previous connection" : "agent connected",
            ["agent": "\(agentID.logSafe())", "labels": "\(hello.labels.description.logSafe())", "resumed": "\(held.count)"])
        return .success(Connection(resume: resume, replacesLiveConnection: live, output: turn))
    }

    /// The agent's connection ended. Its leases stay for the TTL so a reconnect resumes.
    public mutating func agentDisconnected(_ agentID: String, now: ContinuousClock.Instant) -> LifecycleOutput {
        var turn = LifecycleOutput()
        scheduler.agentDisconnected(id: agentID, now: now)
        turn.actions.append(.demandChanged)
        turn.log(.info, "agent disconnected", ["agent": "\(agentID.logSafe())"])
        return turn
    }

    /// Anything arrived from the agent: it is alive.
    public mutating func agentHeard(_ agentID: String, now: ContinuousClock.Instant, wallClock: Date) {
        scheduler.agentSeen(id: agentID, now: now)
        agentInfo[agentID]?.lastSeenAt = wallClock
        agentInfo[agentID]?.lastHeard = now
    }

    /// `Ready`: the agent can take `slots` more jobs.
    public mutating func agentReady(_ agentID: String, slots: Int, now: ContinuousClock.Instant, wallClock: Date) -> LifecycleOutput {
        var turn = LifecycleOutput()
        apply(scheduler.agentReady(id: agentID, slots: slots, now: now), now: wallClock, into: &turn)
        turn.actions.append(.demandChanged)
        return turn
    }

    /// `Drain`: the agent stops taking work (it finishes what it holds).
    public mutating func agentDraining(_ agentID: String) -> LifecycleOutput {
        var turn = LifecycleOutput()
        scheduler.agentDraining(id: agentID)
        turn.actions.append(.demandChanged)
        turn.log(.info, "agent is draining", ["agent": "\(agentID.logSafe())"])
        return turn
    }

    /// Scale-in: drains up to `count` of `candidates` that are idle now, and tells each.
    /// Checking idleness and marking the agent draining is one step, so a job queued at the
    /// same moment is either leased first (the agent is busy and stays) or never to it.
    public mutating func drainIdle(candidates: [String], count: Int, requestedBy scaler: String) -> (drained: [String], output: LifecycleOutput) {
        var turn = LifecycleOutput()
        let drained = scheduler.drainIdle(candidates: candidates, count: count)
        for agentID in drained {
            turn.send(.with { $0.drain = .with { $0.reason = "scale-in by \(scaler)" } }, to: agentID)
        }
        turn.actions.append(.demandChanged)
        return (drained, turn)
    }

    /// `Heartbeat`: checks every attempt the agent says it runs (a stale one is told to
    /// stop), keeps why it takes no new jobs (an agent that does not know the field sends
    /// none: it clears), and acknowledges. The reason is for people (`gantry agents`); the
    /// agent withdrew its offer itself with `Ready{slots: 0}`.
    public mutating func heartbeat(_ heartbeat: Gantry_V1_Heartbeat, from agentID: String) -> LifecycleOutput {
        var turn = LifecycleOutput()
        let reason = heartbeat.notReadyReason.isEmpty ? nil : heartbeat.notReadyReason
        if let info = agentInfo[agentID], info.notReadyReason != reason {
            agentInfo[agentID]?.notReadyReason = reason
            if let reason {
                turn.log(.warning, "agent takes no new jobs", ["agent": "\(agentID.logSafe())", "why": "\(reason.logSafe())"])
            } else {
                turn.log(.info, "agent takes jobs again", ["agent": "\(agentID.logSafe())"])
            }
        }
        for running in heartbeat.running {
            _ = current(running.jobID, attempt: running.attempt, agent: agentID, into: &turn)
        }
        turn.send(.with { $0.heartbeatAck = .with { $0.sentAtUnixMs = heartbeat.sentAtUnixMs } }, to: agentID)
        return turn
    }

    /// The periodic check (at least once a second): agents silent past the TTL are lost
    /// with everything they held, jobs past their deadline end `timed_out`, and lost agents
    /// older than an hour are forgotten.
    public mutating func tick(now: ContinuousClock.Instant, wallClock: Date) -> LifecycleOutput {
        var turn = LifecycleOutput()
        apply(scheduler.tick(now: now), now: wallClock, into: &turn)
        enforceDeadlines(now: wallClock, into: &turn)
        let cutoff = wallClock.addingTimeInterval(-3600)
        if lostAgents.contains(where: { $0.value.lastSeenAt <= cutoff }) {
            lostAgents = lostAgents.filter { $0.value.lastSeenAt > cutoff }
        }
        return turn
    }

    /// The coordinator's backstop for step timeouts: the agent enforces `timeout`, but if
    /// it cannot (hung, clock trouble, a bug), the job still ends `timed_out` here, the
    /// attempt is fenced off, and the agent is told to kill its copy.
    private mutating func enforceDeadlines(now: Date, into turn: inout LifecycleOutput) {
        let overdue = jobs.values.filter { job in
            guard job.state == .running, let timeout = job.timeoutSeconds, let started = job.startedAt else { return false }
            // In Double: a row stored before the parser's limits could hold any Int.
            return now.timeIntervalSince(started) > Double(timeout) + Double(job.cancelGraceSeconds) + configuration.deadlineSlack
        }
        for job in overdue.sorted(by: { $0.id < $1.id }) {
            turn.log(.warning, "job overran its timeout without a report from its agent; ending it", ["job": "\(job.id)"])
            let holder = scheduler.holder(of: job.id)
            if let holder { turn.send(Self.cancelFrame(job, reason: "timed out"), to: holder) }
            finish(
                job, agent: holder ?? job.agentId ?? "", state: .timedOut,
                reason: "timed out: the agent did not stop the step within timeout + cancel_grace + \(Int(configuration.deadlineSlack)) s",
                now: now, into: &turn)
        }
    }
}
