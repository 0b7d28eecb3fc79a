import Foundation
import GantryPipeline
import Logging

/// Steps a running step adds to its own pipeline (`gantry pipeline upload`), built and
/// validated off the single writer (`CoordinatorCore.uploadSteps`): the job rows, in file
/// order, like a submission's (`if:` false: `skipped`; without dependencies `queued`,
/// a `block:` `blocked`; the rest `waiting`).
public struct PipelineUpload: Sendable, Equatable {
    public var pipelineID: String
    /// The uploading job and the attempt whose token made the request.
    public var jobID: String
    public var attempt: Int
    public var jobs: [StoredJob]

    public init(pipelineID: String, jobID: String, attempt: Int, jobs: [StoredJob]) {
        self.pipelineID = pipelineID
        self.jobID = jobID
        self.attempt = attempt
        self.jobs = jobs
    }
}

/// Why the lifecycle refused an upload that was valid when it was checked: the pipeline
/// or the uploading attempt moved on meanwhile, or another upload took a key first.
public struct UploadRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Every job of the pipeline has ended.
        case pipelineEnded
        /// The uploading attempt is not running any more (finished, retried, cancelled).
        case notHeld
        /// The steps do not fit the pipeline: a key taken, a dependency unknown or later.
        case invalid
        /// The pipeline's upload or job limit.
        case limit
    }

    public var kind: Kind
    public var description: String
}

extension JobLifecycle {
    /// Most uploads into one pipeline. Each parses up to 1 MiB of YAML on a request's
    /// task; a pipeline that needs more than 100 uploads is generating itself step by
    /// step, which a loop in one step does better. The jobs uploads add are bounded by
    /// `PipelineLimits.maximumJobs` for the whole pipeline.
    public static let maximumUploadsPerPipeline = 100

    /// Appends uploaded steps to a running pipeline, in one turn and one transaction.
    ///
    /// The steps are inserted after the uploading step, as Buildkite does: every job
    /// still waiting for the uploading step also waits for every uploaded step, so a
    /// `wait` after the uploader covers what it uploaded. Uploaded steps themselves start
    /// at once unless they depend on something (an existing step that already ended
    /// decides them in this turn). Refused, changing nothing, if the pipeline has ended,
    /// the uploading attempt is no longer held (or is being cancelled), a key is already
    /// taken, a dependency is unknown or waits for the uploader (a cycle), or a limit is
    /// reached. Checks are linear in the pipeline's jobs, at most 1,000.
    public mutating func upload(_ upload: PipelineUpload, now: Date) -> Result<LifecycleOutput, UploadRefusal> {
        let pipelineID = upload.pipelineID
        guard var progress = pipelines[pipelineID] else {
            return .failure(
                UploadRefusal(kind: .pipelineEnded, description: "pipeline \(pipelineID) has ended: no steps can be added to it"))
        }
        guard let uploader = jobs[upload.jobID], uploader.pipelineId == pipelineID, uploader.state.isHeld,
            uploader.attempt == upload.attempt
        else {
            return .failure(
                UploadRefusal(
                    kind: .notHeld,
                    description: "attempt \(upload.attempt) of job \(upload.jobID) is no longer running: only a running step "
                        + "may add steps to its pipeline"))
        }
        if let reason = uploader.cancelReason {
            return .failure(
                UploadRefusal(kind: .notHeld, description: "job \(upload.jobID) is being cancelled (\(reason)): it may not add steps"))
        }
        guard progress.uploads < Self.maximumUploadsPerPipeline else {
            return .failure(
                UploadRefusal(
                    kind: .limit,
                    description: "pipeline \(pipelineID) already had \(progress.uploads) uploads, the most one pipeline may have"))
        }
        guard !upload.jobs.isEmpty else {
            return .failure(UploadRefusal(kind: .invalid, description: "the upload has no jobs"))
        }
        let total = progress.jobIDs.count + upload.jobs.count
        guard total <= PipelineLimits.maximumJobs else {
            return .failure(
                UploadRefusal(
                    kind: .limit,
                    description: "pipeline \(pipelineID) would have \(total) jobs; the limit is \(PipelineLimits.maximumJobs), "
                        + "uploads included"))
        }
        // Sets and single passes throughout: 500 uploaded steps and 250 jobs after a
        // `wait` are 125,000 new edges, which must stay milliseconds on the single writer.
        var newKeys: [String] = []
        var uploaded: Set<String> = []
        for job in upload.jobs where uploaded.insert(job.key).inserted { newKeys.append(job.key) }
        if let taken = newKeys.first(where: { progress.steps[$0] != nil }) {
            return .failure(
                UploadRefusal(
                    kind: .invalid, description: "step key `\(taken)` is already a step of pipeline \(pipelineID) (added meanwhile?)"))
        }
        let later = Self.steps(after: uploader.key, in: progress, jobs: jobs)
        for job in upload.jobs {
            for dependency in job.dependsOn where !uploaded.contains(dependency) {
                guard progress.steps[dependency] != nil else {
                    return .failure(
                        UploadRefusal(
                            kind: .invalid, description: "step `\(job.key)` depends on `\(dependency)`, which is not a step"))
                }
                guard !later.contains(dependency) else {
                    return .failure(
                        UploadRefusal(
                            kind: .invalid,
                            description: "step `\(job.key)` depends on `\(dependency)`, which runs after the uploading step "
                                + "and so after every uploaded step: that is a cycle"))
                }
            }
        }

        var turn = LifecycleOutput()
        var rows = upload.jobs
        let first = progress.jobIDs.count
        for index in rows.indices {
            rows[index].pipelineId = pipelineID
            rows[index].position = first + index
            if rows[index].state == .queued {
                rows[index].sequence = nextSequence
                nextSequence += 1
            }
        }
        // The jobs that wait for the uploading step now wait for the uploaded ones too.
        var grown: [String: [String]] = [:]
        var added: [String: [String]] = [:]
        for id in progress.dependents[uploader.key] ?? [] where progress.waiting.contains(id) && added[id] == nil {
            guard var job = jobs[id] else { continue }
            let existing = Set(job.dependsOn)
            let keys = newKeys.filter { !existing.contains($0) }
            added[id] = keys
            guard !keys.isEmpty else { continue }
            job.dependsOn += keys
            jobs[id] = job
            grown[id] = job.dependsOn
        }
        // Progress: every new step's job count first, then what ended at once, then what
        // waits (counting what it still waits for), as `PipelineProgress.init` does.
        for job in rows {
            progress.steps[job.key, default: PipelineProgress.StepProgress()].jobs += 1
            progress.jobIDs.append(job.id)
        }
        for job in rows {
            if job.isTerminal {
                progress.ended(job)
            } else {
                progress.unfinished += 1
            }
        }
        for job in rows where job.state == .waiting { progress.wait(job) }
        // A grown job is an existing one, so no uploaded step lists it yet.
        for id in grown.keys.sorted() {
            for key in added[id] ?? [] {
                progress.dependents[key, default: []].append(id)
                if !(progress.steps[key]?.isComplete ?? true) { progress.pendingDependencies[id, default: 0] += 1 }
            }
        }
        progress.uploads += 1
        pipelines[pipelineID] = progress
        for job in rows where !job.isTerminal { jobs[job.id] = job }

        turn.write(.appendJobs(PipelineAppend(pipelineID: pipelineID, jobs: rows, uploads: progress.uploads, dependencies: grown)))
        turn.log(
            .info, "steps uploaded",
            ["pipeline": "\(pipelineID)", "job": "\(upload.jobID)", "steps": "\(newKeys.count)", "jobs": "\(rows.count)"])
        for job in rows { turn.notify(job.id) }
        for id in grown.keys.sorted() { turn.notify(id) }
        for job in rows where job.state == .queued { admit(job, now: now, into: &turn) }
        for job in rows where job.state == .blocked {
            turn.log(.info, "pipeline waits for approval", ["pipeline": "\(pipelineID)", "step": "\(job.key)"])
        }
        // Waiting uploaded jobs whose dependencies have all ended already (existing steps
        // that finished, uploaded ones skipped by `if:`) are decided now.
        let ready = Set(rows.filter { $0.state == .waiting }.flatMap(\.dependsOn)).filter {
            progress.steps[$0]?.isComplete ?? true
        }
        decideDependents(of: ready.sorted(), pipeline: pipelineID, now: now, into: &turn)
        turn.actions.append(.demandChanged)
        return .success(turn)
    }

    /// The steps that wait, directly or through others, for step `key`: while `key` has
    /// an unfinished job these are all still waiting, so the waiting jobs are enough.
    static func steps(after key: String, in progress: PipelineProgress, jobs: [String: StoredJob]) -> Set<String> {
        var later: Set<String> = []
        var frontier = [key]
        while let step = frontier.popLast() {
            for id in progress.dependents[step] ?? [] where progress.waiting.contains(id) {
                guard let dependent = jobs[id]?.key, later.insert(dependent).inserted else { continue }
                frontier.append(dependent)
            }
        }
        return later
    }
}
