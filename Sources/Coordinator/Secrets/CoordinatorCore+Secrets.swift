import GantryProtocol

extension CoordinatorCore {
    /// The frame as it leaves for the agent: a lease gets the values of the secrets its
    /// step named, from the most specific scope that applies to it (the lease carries the
    /// repository and environment that decide it). Done here, at the I/O edge, so the
    /// lifecycle, its output and its tests never hold a value; this is a dictionary lookup,
    /// no decryption and no database read.
    ///
    /// A name no applicable scope holds any more (deleted since submission, which checked
    /// it) is left out: the step runs without the variable, and the coordinator logs which
    /// name was missing (the name only).
    ///
    /// An agent older than protocol version 3 gets none: it would ignore `Lease.secrets`
    /// and, worse, not mask them; its step runs without them and the coordinator says why.
    ///
    /// This is the send edge's one hook (`perform` calls it for every frame), so it also
    /// adds the attempt's job token and the API endpoint (`withJobToken`).
    func withSecrets(_ envelope: Gantry_V1_Envelope, for session: AgentSession) -> Gantry_V1_Envelope {
        withJobToken(withSecretValues(envelope, for: session))
    }

    private func withSecretValues(_ envelope: Gantry_V1_Envelope, for session: AgentSession) -> Gantry_V1_Envelope {
        guard case .lease(let lease) = envelope.body, let names = jobs[lease.jobID]?.secrets, !names.isEmpty else {
            return envelope
        }
        guard session.protocolVersion >= 3 else {
            logger.warning(
                "not sending secrets to an agent older than protocol version 3 (it cannot mask them): upgrade it",
                metadata: ["agent": "\(session.agentID.logSafe())", "job": "\(lease.jobID)"])
            return envelope
        }
        let environment = lease.environment.isEmpty ? nil : lease.environment
        let (values, missing) = secrets.resolve(names, repository: lease.repository, environment: environment)
        if !missing.isEmpty {
            logger.warning(
                "a leased step names secrets no applicable scope holds; it runs without them",
                metadata: ["job": "\(lease.jobID)", "missing": "\(missing.joined(separator: ","))"])
        }
        var filled = envelope
        filled.lease.secrets = values
        return filled
    }
}
