import GantryProtocol

/// Turns a job token into the `Principal` of its job, or says why not (401).
///
/// The MAC is checked on the request's task; only a token this coordinator issued costs
/// one hop to the core's actor, which answers from memory whether the attempt is held.
public struct JobTokenAuthenticator: Sendable {
    let core: CoordinatorCore

    public init(core: CoordinatorCore) {
        self.core = core
    }

    public func authenticate(_ text: Substring) async -> Result<Principal, JobTokenRefusal> {
        let token: JobToken
        do {
            token = try core.secrets.jobTokens.verify(text)
        } catch {
            return .failure(error)
        }
        guard let pipelineID = await core.pipelineHolding(jobID: token.jobID, attempt: token.attempt) else {
            return .failure(.notHeld(jobID: token.jobID, attempt: token.attempt))
        }
        return .success(.job(Principal.JobGrant(jobID: token.jobID, attempt: token.attempt, pipelineID: pipelineID)))
    }
}
