import Foundation

/// What the lifecycle keeps about a pipeline while any of its jobs is unfinished: enough
/// to lease its jobs and decide their dependents without reading the store mid-turn.
/// Dropped when its last job ends.
///
/// Dependencies are between *steps* (`depends_on: KEY`), and a step may have many jobs
/// (matrix, parallelism), so progress is counted per step: a step has ended when all its
/// jobs have, and its outcome is the worst of theirs. A waiting job is decided once every
/// step it depends on has ended (`JobLifecycle.decide`), which is what makes `when:
/// always` and `wait` exact: nothing after them starts while something before still runs.
public struct PipelineProgress: Sendable, Equatable {
    /// How one step's jobs stand.
    public struct StepProgress: Sendable, Equatable {
        /// Jobs of the step.
        public var jobs = 0
        /// Of those, how many are terminal.
        public var ended = 0
        /// The worst outcome of its ended jobs so far.
        public var outcome = JobOutcome.passed

        /// Every job of the step is terminal.
        public var isComplete: Bool { ended >= jobs }
    }

    /// Repository, commit and branch, sent with every lease.
    public var repository: String
    public var commit: String
    public var branch: String
    /// Every step of the pipeline by key.
    public var steps: [String: StepProgress]
    /// Every job id of the pipeline in position order (a pipeline cancel walks them).
    public var jobIDs: [String]
    /// Ids of the jobs still `waiting` on dependencies.
    public var waiting: Set<String>
    /// Step key → ids of the waiting jobs that depend on it: what to look at when the
    /// step ends, instead of every waiting job on every finish.
    public var dependents: [String: [String]]
    /// Waiting job id → how many of the steps it depends on have not ended. Counted
    /// down as steps end, so deciding whether a job may be decided is one lookup, not a
    /// walk over its dependencies: a `wait` after 250 steps gives 250 jobs 250
    /// dependencies each, and the single writer must not re-check them on every finish.
    public var pendingDependencies: [String: Int]
    /// How many of its jobs are not terminal.
    public var unfinished: Int
    /// How many files its steps have uploaded into it (`gantry pipeline upload`).
    public var uploads: Int

    public init(pipeline: StoredPipeline, jobs: [StoredJob]) {
        uploads = pipeline.uploads
        repository = pipeline.repository
        commit = pipeline.commit
        branch = pipeline.branch
        steps = [:]
        dependents = [:]
        let ordered = jobs.sorted { $0.position < $1.position }
        jobIDs = ordered.map(\.id)
        waiting = []
        pendingDependencies = [:]
        unfinished = 0
        for job in ordered { steps[job.key, default: StepProgress()].jobs += 1 }
        for job in ordered {
            if job.isTerminal {
                ended(job)
            } else {
                unfinished += 1
            }
        }
        // After every step's count is known, so each waiting job counts what it still
        // waits for.
        for job in ordered where job.state == .waiting { wait(job) }
    }

    /// Counts a terminal job into its step.
    mutating func ended(_ job: StoredJob) {
        var step = steps[job.key, default: StepProgress()]
        step.ended += 1
        step.outcome = step.outcome.combined(with: job.outcome ?? JobOutcome(state: job.state))
        steps[job.key] = step
        guard step.ended == step.jobs else { return }
        for id in dependents[job.key] ?? [] {
            if let count = pendingDependencies[id] { pendingDependencies[id] = count - 1 }
        }
    }

    /// Registers a waiting job under each step it depends on.
    mutating func wait(_ job: StoredJob) {
        waiting.insert(job.id)
        var pending = 0
        for dependency in Set(job.dependsOn) {
            dependents[dependency, default: []].append(job.id)
            if !(steps[dependency]?.isComplete ?? true) { pending += 1 }
        }
        pendingDependencies[job.id] = pending
    }

    /// Every dependency of `job` has ended.
    func dependenciesEnded(_ job: StoredJob) -> Bool {
        (pendingDependencies[job.id] ?? 0) <= 0
    }

    /// The combined outcome of `job`'s dependencies, and the first dependency with that
    /// outcome (for the reason shown when the job does not run).
    func dependencyOutcome(_ job: StoredJob) -> (outcome: JobOutcome, culprit: String?) {
        let outcomes = job.dependsOn.map { ($0, steps[$0]?.outcome ?? .passed) }
        let worst = outcomes.reduce(JobOutcome.passed) { $0.combined(with: $1.1) }
        return (worst, worst == .passed ? nil : outcomes.first { $0.1 == worst }?.0)
    }
}
