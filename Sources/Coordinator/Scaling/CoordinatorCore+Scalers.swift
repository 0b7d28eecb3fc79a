import Foundation
import GantryProtocol

/// A connected autoscaler. It takes no jobs: the coordinator pushes it the demand for the
/// agents it provides and drains idle ones on its request.
struct ScalerConnection {
    let session: AgentSession
    /// The labels of the agents the scaler starts.
    let labels: [String: String]
    /// `<certificate name>/`: the scaler sees and may drain only agents under the name it
    /// enrolled with, so one host's scaler cannot stop another host's agents.
    let agentPrefix: String
    var lastSent: Gantry_V1_Demand?
    var lastSentAt: ContinuousClock.Instant
    /// A scaler heartbeats like an agent; one silent past the lease TTL is dropped, so a
    /// half-open connection does not collect pushed frames forever.
    var lastHeard: ContinuousClock.Instant
}

extension CoordinatorCore {
    /// Registers a scaler after `hello` checked its version and certificate.
    func scalerHello(
        _ hello: Gantry_V1_Hello, version: UInt32, certificateName: String, session: AgentSession
    ) -> Result<Gantry_V1_Welcome, HelloRejection> {
        guard version >= 2 else {
            return .failure(.refused(.unsupportedVersion, "scalers need protocol version 2 or later"))
        }
        if let previous = scalers[hello.agentID] { previous.session.close() }
        scalers[hello.agentID] = ScalerConnection(
            session: session, labels: hello.labels, agentPrefix: certificateName + "/", lastSent: nil,
            lastSentAt: .now, lastHeard: .now)
        logger.info("scaler connected", metadata: ["scaler": "\(hello.agentID)", "labels": "\(LabelSet.format(hello.labels).logSafe())"])
        scheduleDemandPush()
        return .success(welcome(version: version))
    }

    /// One message on a scaler's connection.
    func receiveFromScaler(_ envelope: Gantry_V1_Envelope, scalerID: String, connection: ScalerConnection) {
        scalers[scalerID]?.lastHeard = .now
        switch envelope.body {
        case .heartbeat(let heartbeat):
            connection.session.send(.with { $0.heartbeatAck = .with { $0.sentAtUnixMs = heartbeat.sentAtUnixMs } })
        case .drainIdle(let request):
            let candidates = request.agentIds.filter { $0.hasPrefix(connection.agentPrefix) }
            let (drained, output) = lifecycle.drainIdle(candidates: candidates, count: Int(request.count), requestedBy: scalerID)
            run(output)
            logger.info(
                "scale-in",
                metadata: [
                    "scaler": "\(scalerID)", "asked": "\(request.count)", "drained": "\(drained.joined(separator: ","))",
                ])
            connection.session.send(
                .with {
                    $0.drainIdleResult = .with {
                        $0.requestID = request.requestID
                        $0.drained = drained
                    }
                })
        default:
            connection.session.send(.error(.unexpectedMessage, "a scaler may send only Heartbeat and DrainIdle", fatal: false))
        }
    }

    func scalerDisconnected(scalerID: String, session: AgentSession) {
        guard scalers[scalerID]?.session === session else { return }
        scalers.removeValue(forKey: scalerID)
        logger.info("scaler disconnected", metadata: ["scaler": "\(scalerID)"])
    }

    /// Closes scalers silent past the lease TTL (called from `tick`).
    func dropSilentScalers(now: ContinuousClock.Instant) {
        for (id, scaler) in scalers where now - scaler.lastHeard > configuration.leaseTTL {
            logger.warning("scaler silent past the lease TTL; closing its connection", metadata: ["scaler": "\(id)"])
            scaler.session.close()
            scalers.removeValue(forKey: id)
        }
    }

    /// Something that may change demand happened. The push runs after the current event
    /// (and whatever else is already waiting on the actor), so a burst of submissions or
    /// finishes costs one computation per scaler, not one per job.
    func scheduleDemandPush() {
        guard !scalers.isEmpty, !demandPushPending else { return }
        demandPushPending = true
        Task { self.pushDemand() }
    }

    /// Sends each scaler its demand if it changed, or if `refreshOlderThan` has passed
    /// since the last push (so the wait time stays current and a silent link is noticed).
    func pushDemand(refreshOlderThan: Duration? = nil) {
        demandPushPending = false
        let now = ContinuousClock.now
        for (id, var connection) in scalers {
            let demand = demandMessage(for: connection)
            let changed = connection.lastSent.map { !Self.sameDemand($0, demand) } ?? true
            let stale = refreshOlderThan.map { now - connection.lastSentAt >= $0 } ?? false
            guard changed || stale else { continue }
            connection.session.send(.with { $0.demand = demand })
            connection.lastSent = demand
            connection.lastSentAt = now
            scalers[id] = connection
        }
    }

    private func demandMessage(for connection: ScalerConnection) -> Gantry_V1_Demand {
        let demand = demand(forAgentLabels: connection.labels)
        let agents = scheduler.agents.values
            .filter {
                $0.id.hasPrefix(connection.agentPrefix) && Scheduler.matches(selector: connection.labels, labels: $0.labels)
            }
            .sorted { $0.id < $1.id }
            .map { agent in
                Gantry_V1_AgentStatus.with {
                    $0.agentID = agent.id
                    switch agent.state {
                    case .idle: $0.state = .idle
                    case .busy: $0.state = .busy
                    case .draining: $0.state = .draining
                    case .disconnected: $0.state = .disconnected
                    }
                }
            }
        return .with {
            $0.queued = UInt32(demand.queued)
            $0.running = UInt32(demand.running)
            $0.oldestQueuedWaitMs = UInt64(demand.oldestQueuedWait * 1000)
            $0.agents = agents
        }
    }

    /// Equal apart from the wait time, which changes every millisecond.
    private static func sameDemand(_ a: Gantry_V1_Demand, _ b: Gantry_V1_Demand) -> Bool {
        a.queued == b.queued && a.running == b.running && a.agents == b.agents
    }

    // MARK: - HTTP

    /// Demand for the jobs agents labelled `labels` could run (`GET /v1/demand`).
    public func demand(forAgentLabels labels: [String: String]) -> Demand {
        scheduler.demand(
            forAgentLabels: labels, selector: { self.jobs[$0]?.agents }, now: Date(), queuedAt: { self.jobs[$0]?.queuedAt })
    }

    /// Everything `/metrics` exports about scaling, in one consistent snapshot.
    public func scalingSnapshot() -> ScalingSnapshot {
        ScalingSnapshot(
            bySelector: scheduler.demandBySelector(
                selector: { self.jobs[$0]?.agents }, now: Date(), queuedAt: { self.jobs[$0]?.queuedAt }),
            agentsByLabelSet: scheduler.agentsByLabelSet())
    }
}

/// Queue depth and wait per job selector, agents per label set and state.
public struct ScalingSnapshot: Sendable {
    public var bySelector: [String: Demand]
    public var agentsByLabelSet: [String: [Scheduler.Agent.State: Int]]
}

extension CoordinatorCore {
    /// `GET /v1/demand`: the demand for agents labelled `labels` and those agents' states.
    public func demandView(forAgentLabels labels: [String: String]) -> API.Demand {
        let demand = demand(forAgentLabels: labels)
        var agents: [String: Int] = [:]
        for state in Scheduler.Agent.State.allCases { agents[state.rawValue] = 0 }
        for agent in scheduler.agents.values where Scheduler.matches(selector: labels, labels: agent.labels) {
            agents[agent.state.rawValue, default: 0] += 1
        }
        return API.Demand(
            labels: LabelSet.format(labels), queued: demand.queued, running: demand.running,
            oldestQueuedWaitSeconds: demand.oldestQueuedWait, agents: agents)
    }
}
