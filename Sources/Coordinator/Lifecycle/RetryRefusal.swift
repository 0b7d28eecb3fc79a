/// Why `gantry retry JOB` was refused; the API answers 404 or 409 with the description.
public enum RetryRefusal: Error, Equatable, CustomStringConvertible {
    case unknownJob
    /// Only a finished job can be retried; cancel it first.
    case notFinished(JobState)
    /// Its `if:` was false when the pipeline was submitted: it cannot run in this build.
    case skippedByCondition
    /// It did not run because of how its dependencies ended: retry those instead.
    case decidedByDependencies
    /// It was cancelled before its dependencies ended, and they still run.
    case dependenciesRunning
    /// Another retry changed the pipeline at the same moment.
    case changedMeanwhile

    public var description: String {
        switch self {
        case .unknownJob: return "no such job"
        case .notFinished(let state):
            return "the job is \(state.rawValue): only a finished job can be retried (cancel it first)"
        case .skippedByCondition:
            return "the job was skipped by its `if:` condition, which does not change for this build: rebuild the pipeline instead"
        case .decidedByDependencies:
            return "the job did not run because of how its dependencies ended: retry the dependency that failed, and this job "
                + "is decided again when it ends"
        case .dependenciesRunning:
            return "the job was cancelled before its dependencies ended and they have not all ended yet: wait for them, or "
                + "rebuild the pipeline"
        case .changedMeanwhile:
            return "the pipeline changed while this retry was prepared (another retry?): try again"
        }
    }
}
