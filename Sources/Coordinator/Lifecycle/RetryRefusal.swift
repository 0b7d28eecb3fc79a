/// Why `gantry retry JOB` was refused; the API answers 404 or 409 with the description.
public enum RetryRefusal: Error, Equatable, CustomStringConvertible {
    case unknownJob
    /// Only a finished job can be retried; cancel it first.
    case notFinished(JobState)
    /// Its `if:` was false when the pipeline was submitted: it cannot run in this build.
    case skippedByCondition

    public var description: String {
        switch self {
        case .unknownJob: return "no such job"
        case .notFinished(let state):
            return "the job is \(state.rawValue): only a finished job can be retried (cancel it first)"
        case .skippedByCondition:
            return "the job was skipped by its `if:` condition, which does not change for this build: rebuild the pipeline instead"
        }
    }
}
