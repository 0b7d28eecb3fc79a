import Foundation
import GantryProtocol

/// Why an approval or rejection was refused; the API answers 404, 409 or 422 with it.
public enum BlockDecisionRefusal: Error, Equatable, CustomStringConvertible {
    /// No pipeline with that id is running.
    case pipelineNotRunning
    /// Nothing in the pipeline waits for a decision (with that step key, if given).
    case nothingBlocked(step: String?)
    /// Several blocks wait: the caller must say which (`--step`).
    case ambiguous([String])
    /// The fields given do not fit the block's (unknown, missing, not an option).
    case invalidFields(String)

    public var description: String {
        switch self {
        case .pipelineNotRunning: return "the pipeline is not running: nothing in it waits for a decision"
        case .nothingBlocked(let step?): return "step `\(step)` is not waiting for a decision"
        case .nothingBlocked(nil): return "nothing in the pipeline waits for a decision"
        case .ambiguous(let keys):
            return "several steps wait for a decision (\(keys.joined(separator: ", "))): say which with --step (\"step\")"
        case .invalidFields(let problem): return problem
        }
    }
}

extension JobLifecycle {
    /// The `blocked` job a decision is about: the one with key `step`, or the pipeline's
    /// only blocked job.
    public func blockedJob(pipeline pipelineID: String, step: String?) -> Result<StoredJob, BlockDecisionRefusal> {
        guard let progress = pipelines[pipelineID] else { return .failure(.pipelineNotRunning) }
        let blocked = progress.jobIDs.compactMap { jobs[$0] }.filter { $0.state == .blocked }
        let matching = step.map { key in blocked.filter { $0.key == key } } ?? blocked
        guard let job = matching.first else { return .failure(.nothingBlocked(step: step)) }
        guard matching.count == 1 else { return .failure(.ambiguous(matching.map(\.key))) }
        return .success(job)
    }

    /// Someone approved or rejected a block. Approved, it ends `succeeded` and its fields
    /// are stored as meta-data in the same transaction, before the steps it releases are
    /// leased; rejected, it ends `failed` (outcome failed), so its `on_success`
    /// dependents are skipped and `on_failure` ones run. Nil if the job no longer waits
    /// (another decision got there first).
    public mutating func decide(
        _ jobID: String, approved: Bool, by actor: String, reason: String?, metaData: [StoredMetaData], now: Date
    ) -> (StoredJob, LifecycleOutput)? {
        guard let job = jobs[jobID], job.state == .blocked else { return nil }
        var turn = LifecycleOutput()
        if approved, !metaData.isEmpty { turn.write(.setMetaData(metaData)) }
        let because = reason.map { ": \($0)" } ?? ""
        let text = approved ? "approved by \(actor)\(because)" : "rejected by \(actor)\(because)"
        turn.log(.info, approved ? "block approved" : "block rejected", ["job": "\(jobID)", "step": "\(job.key)"])
        finish(
            job, agent: nil, state: approved ? .succeeded : .failed, reason: text, outcome: approved ? .passed : .failed,
            now: now, into: &turn)
        var decided = job
        decided.state = approved ? .succeeded : .failed
        decided.outcome = approved ? .passed : .failed
        decided.reason = text
        decided.finishedAt = now
        return (decided, turn)
    }
}
