import Foundation

/// What the lifecycle keeps about a pipeline while any of its jobs is unfinished: enough
/// to lease its jobs and settle their dependencies without reading the store mid-turn.
/// Dropped when its last job ends.
public struct PipelineProgress: Sendable, Equatable {
    /// Repository, commit and branch, sent with every lease.
    public var repository: String
    public var commit: String
    public var branch: String
    /// The state of every step, by key: what a waiting step's dependencies are checked
    /// against. Terminal steps are no longer in `JobLifecycle.jobs`, so they live here.
    public var stepStates: [String: JobState]
    /// Every job id of the pipeline in position order (a pipeline cancel walks them).
    public var jobIDs: [String]
    /// Ids of the steps still `waiting` on dependencies.
    public var waiting: Set<String>
    /// How many of its jobs are not terminal.
    public var unfinished: Int

    public init(pipeline: StoredPipeline, jobs: [StoredJob]) {
        repository = pipeline.repository
        commit = pipeline.commit
        branch = pipeline.branch
        stepStates = Dictionary(jobs.map { ($0.key, $0.state) }, uniquingKeysWith: { $1 })
        jobIDs = jobs.sorted { $0.position < $1.position }.map(\.id)
        waiting = Set(jobs.filter { $0.state == .waiting }.map(\.id))
        unfinished = jobs.filter { !$0.isTerminal }.count
    }
}
