import GantryProtocol

extension CoordinatorCore {
    /// A lease as it leaves: with its attempt's job token and the API's endpoint. Done at
    /// the send edge, like secrets, so the token never enters the lifecycle's output, the
    /// store or a job view; it is recomputed from the key whenever a lease is (re)sent.
    /// An agent that predates these fields ignores them, and so neither exports nor logs
    /// the token.
    func withJobToken(_ envelope: Gantry_V1_Envelope) -> Gantry_V1_Envelope {
        guard case .lease(var lease) = envelope.body else { return envelope }
        secrets.jobTokens.fill(&lease)
        var filled = envelope
        filled.lease = lease
        return filled
    }

    /// The pipeline of `jobID` if its current attempt is `attempt` and an agent holds it
    /// (leased or running), else nil. The lifecycle's in-memory jobs are the authority: a
    /// finished job has left them, and a retried or fenced-off attempt is not current.
    public func pipelineHolding(jobID: String, attempt: UInt32) -> String? {
        guard let job = jobs[jobID], job.state.isHeld, job.attempt == Int(attempt) else { return nil }
        return job.pipelineId
    }
}
