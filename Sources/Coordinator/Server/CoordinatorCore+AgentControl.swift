import GantryProtocol

/// What an operator can do to connected agents from outside the protocol: drain one, or
/// cut off a host (`AgentRevocation.forget`). Both only act on the core's own tables of
/// sessions and the lifecycle; the store is not touched here.
extension CoordinatorCore {
    /// Drains `agentID`: it finishes the jobs it runs, takes no more (no lease is granted
    /// to it from this turn on) and exits once idle, exactly as on SIGTERM. Returns false
    /// if no agent with that id is connected (a scaler id is not an agent).
    public func drain(agentID: String, reason: String = "drained by an operator") -> Bool {
        guard sessions[agentID] != nil else { return false }
        var output = lifecycle.agentDraining(agentID)
        output.send(.with { $0.drain = .with { $0.reason = reason.logSafe(maximum: 512) } }, to: agentID)
        run(output)
        flush()
        return true
    }

    /// Closes every agent and scaler connection of `host` (ids `host` and `host/…`) after
    /// telling each why (a fatal `CERTIFICATE_REVOKED`). The sessions end through the
    /// ordinary disconnect path, so their jobs follow the lease TTL. Returns the ids closed.
    func closeConnections(ofHost host: String, reason: String) -> [String] {
        let belongs: (String) -> Bool = { $0 == host || $0.hasPrefix(host + "/") }
        let refusal = Gantry_V1_Envelope.error(
            .certificateRevoked, "this host's certificate was revoked (\(reason.logSafe(maximum: 200))): enroll it again",
            fatal: true)
        var closed: [String] = []
        for (id, session) in sessions where belongs(id) {
            session.send(refusal)
            session.close()
            closed.append(id)
        }
        for (id, scaler) in scalers where belongs(id) {
            scaler.session.send(refusal)
            scaler.session.close()
            closed.append(id)
        }
        if !closed.isEmpty {
            logger.notice("closed the connections of a forgotten host", metadata: ["host": "\(host.logSafe())", "agents": "\(closed.count)"])
        }
        return closed.sorted()
    }
}
