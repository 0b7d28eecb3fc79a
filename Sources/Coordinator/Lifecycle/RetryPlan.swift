import Foundation

/// What `gantry retry JOB` would do, worked out before anything changes, so the caller
/// can check who may run each job it brings back (`Principal.checkMayRetry`) and do the
/// store reads off the single writer.
///
/// The retried job runs again as a new attempt of the same job. The jobs after it that
/// never ran because of how it ended wait again, and are decided when it ends, so a build
/// whose failed step passes on retry carries on. Only jobs hanging on the retried one
/// through a chain of jobs that never ran are brought back: a step after it that ran (an
/// `always` step, say) is history, and what came after that step stays as it ended.
public struct RetryPlan: Sendable, Equatable {
    /// The job to run again, as stored.
    public var job: StoredJob
    /// The jobs to put back to `waiting`, as stored.
    public var reopened: [StoredJob]

    /// Plans a retry of `jobID` among `pipelineJobs` (every job of its pipeline, as
    /// stored), or says why it cannot be retried.
    ///
    /// Only a job that ended and whose dependencies let it run can be retried: one its
    /// `if:` skipped never runs in this build; one skipped or cancelled because of a
    /// dependency is retried by retrying that dependency; one cancelled before its
    /// dependencies ended waits for them in a rebuild.
    public static func make(job jobID: String, pipelineJobs: [StoredJob]) -> Result<RetryPlan, RetryRefusal> {
        guard let job = pipelineJobs.first(where: { $0.id == jobID }) else { return .failure(.unknownJob) }
        guard job.isTerminal else { return .failure(.notFinished(job.state)) }
        if job.state == .skipped {
            return .failure(JobLifecycle.isDecidedByDependencies(job) ? .decidedByDependencies : .skippedByCondition)
        }
        var steps: [String: PipelineProgress.StepProgress] = [:]
        for row in pipelineJobs {
            var step = steps[row.key, default: .init()]
            step.jobs += 1
            if row.isTerminal {
                step.ended += 1
                step.outcome = step.outcome.combined(with: row.outcome ?? JobOutcome(state: row.state))
            }
            steps[row.key] = step
        }
        guard job.dependsOn.allSatisfy({ steps[$0]?.isComplete ?? true }) else { return .failure(.dependenciesRunning) }
        let outcome = job.dependsOn.reduce(JobOutcome.passed) { $0.combined(with: steps[$1]?.outcome ?? .passed) }
        if JobLifecycle.verdict(when: job.when, dependencies: outcome, culprit: nil) != nil {
            return .failure(.decidedByDependencies)
        }
        // Jobs by the steps they depend on, once: a breadth-first walk over steps whose
        // jobs never ran, from the retried job's step.
        var dependents: [String: [StoredJob]] = [:]
        for row in pipelineJobs {
            for dependency in row.dependsOn { dependents[dependency, default: []].append(row) }
        }
        var reopened: [StoredJob] = []
        var visited: Set<String> = [job.key]
        var frontier = [job.key]
        while let key = frontier.popLast() {
            for row in dependents[key] ?? [] where JobLifecycle.isDecidedByDependencies(row) {
                reopened.append(row)
                if visited.insert(row.key).inserted { frontier.append(row.key) }
            }
        }
        var seen: Set<String> = []
        reopened = reopened.filter { seen.insert($0.id).inserted }.sorted { $0.position < $1.position }
        return .success(RetryPlan(job: job, reopened: reopened))
    }
}

extension JobLifecycle {
    /// Carries out a `RetryPlan`. Refuses (nil) if anything in it changed since it was
    /// made: the job or a reopened one is no longer terminal here (another retry got
    /// there first). `pipelineJobs` are the rows the plan was made from; the pipeline's
    /// progress is rebuilt from them with the lifecycle's own unfinished jobs on top.
    public mutating func retry(
        _ plan: RetryPlan, pipeline: StoredPipeline, pipelineJobs: [StoredJob], reason: String, now: Date
    ) -> (StoredJob, LifecycleOutput)? {
        guard jobs[plan.job.id] == nil, plan.reopened.allSatisfy({ jobs[$0.id] == nil }) else { return nil }
        // The rows were read off the single writer; the progress below is rebuilt from
        // them, so they must still be what the lifecycle holds. A row read unfinished that
        // the lifecycle no longer holds ended meanwhile (rebuilt as unfinished, its
        // dependents would never be decided), and a running pipeline with more jobs than
        // were read took an upload meanwhile (rebuilt without them, they would be
        // forgotten). Either way the plan is stale: refused, nothing changed.
        guard pipelineJobs.allSatisfy({ $0.state.isTerminal || jobs[$0.id] != nil }),
            pipelines[pipeline.id].map({ $0.jobIDs.count == pipelineJobs.count }) ?? true
        else { return nil }
        var turn = LifecycleOutput()
        let reopenedIDs = Set(plan.reopened.map(\.id))
        var retried = plan.job
        retried.state = .queued
        retried.exitStatus = nil
        retried.reason = reason
        retried.outcome = nil
        retried.cancelReason = nil
        retried.agentId = nil
        retried.startedAt = nil
        retried.finishedAt = nil
        retried.logLength = 0
        var rows: [StoredJob] = []
        for row in pipelineJobs {
            if row.id == retried.id {
                rows.append(retried)
            } else if reopenedIDs.contains(row.id) {
                var waiting = row
                waiting.state = .waiting
                waiting.reason = nil
                waiting.outcome = nil
                waiting.finishedAt = nil
                jobs[waiting.id] = waiting
                turn.write(.updateJob(waiting))
                turn.notify(waiting.id)
                rows.append(waiting)
            } else {
                rows.append(jobs[row.id] ?? row)
            }
        }
        pipelines[pipeline.id] = PipelineProgress(pipeline: pipeline, jobs: rows)
        turn.log(
            .info, "job retried by hand",
            ["job": "\(retried.id)", "pipeline": "\(pipeline.id)", "reopened": "\(plan.reopened.count)"])
        makeRunnable(retried, now: now, into: &turn)
        turn.actions.append(.demandChanged)
        return (jobs[retried.id] ?? retried, turn)
    }
}
