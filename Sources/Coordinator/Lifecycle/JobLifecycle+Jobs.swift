import Foundation
import GantryProtocol
import Logging

extension JobLifecycle {
    // MARK: - From the API

    /// A pipeline was accepted: its rows are inserted and its runnable jobs leased or
    /// queued. `created` comes from `CoordinatorCore.rows`: jobs whose `if:` was false are
    /// already `skipped`, jobs without dependencies `queued`, the others `waiting`; a
    /// waiting job whose dependencies were all skipped is decided in this same turn.
    public mutating func submit(_ pipeline: StoredPipeline, jobs created: [StoredJob], now: Date) -> LifecycleOutput {
        var turn = LifecycleOutput()
        var rows = created
        for index in rows.indices where rows[index].state == .queued {
            rows[index].sequence = nextSequence
            nextSequence += 1
        }
        turn.write(.insertPipeline(pipeline, jobs: rows))
        pipelines[pipeline.id] = PipelineProgress(pipeline: pipeline, jobs: rows)
        if pipelines[pipeline.id]?.unfinished == 0 { pipelines[pipeline.id] = nil }
        for job in rows where !job.isTerminal { jobs[job.id] = job }
        turn.log(.info, "pipeline submitted", ["pipeline": "\(pipeline.id)", "jobs": "\(rows.count)"])
        for job in rows where job.state == .queued { admit(job, now: now, into: &turn) }
        for job in rows where job.state == .blocked {
            turn.log(.info, "pipeline waits for approval", ["pipeline": "\(pipeline.id)", "step": "\(job.key)"])
        }
        // Decide every waiting job whose dependencies have all ended already (skipped by
        // their `if:`), from every step something waits on that is complete, or has no
        // jobs at all (the parser refuses that; this keeps such a row from waiting forever).
        if let progress = pipelines[pipeline.id] {
            let ready = progress.dependents.keys.filter { progress.steps[$0]?.isComplete ?? true }
            decideDependents(of: ready.sorted(), pipeline: pipeline.id, now: now, into: &turn)
        }
        turn.actions.append(.demandChanged)
        return turn
    }

    /// Cancels a job. One no agent holds ends `cancelled` at once and is never leased; a
    /// held one is cancelled on its agent (TERM, grace, KILL) and ends `cancelled`, log tail
    /// included, when the agent reports. Returns nil if the job is not unfinished here.
    public mutating func cancel(job jobID: String, reason: String, now: Date) -> (job: StoredJob, output: LifecycleOutput)? {
        var turn = LifecycleOutput()
        guard let job = cancel(jobID, reason: reason, now: now, into: &turn) else { return nil }
        return (job, turn)
    }

    /// `cancel(job:)` inside a turn; also what `cancel_in_progress` does to older jobs of
    /// a group. Returns the job as it now stands (terminal unless an agent holds it).
    @discardableResult
    mutating func cancel(_ jobID: String, reason: String, now: Date, into turn: inout LifecycleOutput) -> StoredJob? {
        guard var job = jobs[jobID] else { return nil }
        if job.state.isHeld {
            guard job.cancelReason == nil else { return job }
            job.cancelReason = reason
            jobs[jobID] = job
            turn.write(.updateJob(job))
            if let holder = scheduler.holder(of: jobID) { turn.send(Self.cancelFrame(job, reason: reason), to: holder) }
            turn.log(.info, "cancelling job on its agent", ["job": "\(jobID)", "agent": "\(job.agentId?.logSafe() ?? "?")"])
            turn.notify(jobID)
            return job
        }
        _ = scheduler.dequeue(job: jobID)
        finish(job, agent: nil, state: .cancelled, reason: reason, now: now, into: &turn)
        job.state = .cancelled
        job.reason = reason
        job.finishedAt = now
        job.outcome = .cancelled
        return job
    }

    /// Cancels every unfinished job of a pipeline in one turn: jobs no agent holds end
    /// `cancelled` at once (none can unblock another, since all of them end; `when:
    /// always` steps included), held ones are cancelled on their agents. One pass over the
    /// pipeline's jobs and one transaction, however many steps it has. Slots its jobs held
    /// in concurrency groups go to the next jobs of other pipelines.
    public mutating func cancel(pipeline pipelineID: String, reason: String, now: Date) -> LifecycleOutput {
        var turn = LifecycleOutput()
        guard let progress = pipelines[pipelineID] else { return turn }
        var dequeued: Set<String> = []
        var admitted: [String] = []
        var ended = 0
        var signalled = 0
        for id in progress.jobIDs {
            guard var job = jobs[id] else { continue }
            if job.state.isHeld {
                guard job.cancelReason == nil else { continue }
                job.cancelReason = reason
                jobs[id] = job
                turn.write(.updateJob(job))
                if let holder = scheduler.holder(of: id) { turn.send(Self.cancelFrame(job, reason: reason), to: holder) }
                signalled += 1
            } else {
                dequeued.insert(id)
                job.state = .cancelled
                job.reason = reason
                job.finishedAt = now
                job.outcome = .cancelled
                turn.write(.updateJob(job))
                retire(job)
                admitted += groups.leave(id)
                ended += 1
            }
            turn.notify(id)
        }
        scheduler.dequeue(jobs: dequeued)
        startAdmitted(admitted.filter { jobs[$0] != nil }, now: now, into: &turn)
        turn.actions.append(.demandChanged)
        turn.log(.info, "cancelled pipeline", ["pipeline": "\(pipelineID)", "jobs": "\(ended + signalled)", "on_agents": "\(signalled)"])
        return turn
    }

    // MARK: - From agents

    /// `LeaseAck`: an accepted lease needs nothing; a refused one is re-queued (the agent
    /// could not take it after all, say its disk was full) and recorded as a refused attempt.
    public mutating func leaseAcknowledged(_ ack: Gantry_V1_LeaseAck, from agentID: String, now: Date) -> LifecycleOutput {
        var turn = LifecycleOutput()
        guard var job = current(ack.jobID, attempt: ack.attempt, agent: agentID, into: &turn), !ack.accepted else { return turn }
        turn.log(.warning, "agent refused a lease", ["job": "\(job.id)", "reason": "\(ack.reason.logSafe())"])
        scheduler.release(job: job.id)
        job.state = .queued
        job.agentId = nil
        job.logLength = 0
        jobs[job.id] = job
        turn.write(.updateJob(job))
        turn.write(.saveAttempt(attemptRecord(job, agent: agentID, state: .refused, reason: ack.reason, now: now)))
        turn.notify(job.id)
        enqueue(job, now: now, into: &turn)
        return turn
    }

    /// `JobStarted`: the step's first command is running.
    public mutating func jobStarted(_ started: Gantry_V1_JobStarted, from agentID: String, now: Date) -> LifecycleOutput {
        var turn = LifecycleOutput()
        guard var job = current(started.jobID, attempt: started.attempt, agent: agentID, into: &turn), job.state == .leased
        else { return turn }
        job.state = .running
        job.startedAt = now
        jobs[job.id] = job
        turn.write(.updateJob(job))
        turn.write(.saveAttempt(attemptRecord(job, agent: agentID, state: .running, reason: nil, now: now)))
        turn.notify(job.id)
        return turn
    }

    /// `LogChunk`: stored if it starts exactly where the stored log ends; a resend of what
    /// is stored is re-acknowledged; a gap is refused with what is stored, so the agent
    /// resends from there. The chunk was inflate-checked before it reached the lifecycle.
    public mutating func logChunk(_ chunk: Gantry_V1_LogChunk, from agentID: String) -> LifecycleOutput {
        var turn = LifecycleOutput()
        guard var job = current(chunk.jobID, attempt: chunk.attempt, agent: agentID, into: &turn) else { return turn }
        // `MessageValidation` bounded both to far below `Int.max`; these cannot trap.
        let offset = Int(chunk.offset)
        let end = offset + Int(chunk.rawLength)
        let stored = job.logLength
        if end > stored {
            guard offset == stored else {
                turn.send(
                    .error(
                        .logGap, "log of job \(chunk.jobID) is stored up to byte \(stored), chunk starts at \(offset)",
                        jobID: chunk.jobID, attempt: chunk.attempt, fatal: false),
                    to: agentID)
                turn.send(Self.logAck(chunk, length: stored), to: agentID)
                return turn
            }
            turn.write(
                .appendLog(.init(jobID: job.id, attempt: job.attempt, offset: offset, rawLength: Int(chunk.rawLength), data: chunk.data)))
            job.logLength = end
            jobs[job.id] = job
            turn.notify(job.id)
        }
        turn.send(Self.logAck(chunk, length: job.logLength), to: agentID)
        return turn
    }

    /// `JobFinished`: ends the attempt once its whole log is stored (else re-acknowledges
    /// the log so the agent resends the tail), retrying it if a rule allows. `finished` is
    /// what the store says about a job the lifecycle no longer holds, looked up by the
    /// caller before the event: a repeated finish of the attempt that already ended is
    /// acknowledged again, nothing else.
    public mutating func jobFinished(
        _ report: Gantry_V1_JobFinished, from agentID: String, alreadyFinished finished: StoredJob?, now: Date
    ) -> LifecycleOutput {
        var turn = LifecycleOutput()
        let acknowledgement = Gantry_V1_Envelope.with {
            $0.finishAck = .with {
                $0.jobID = report.jobID
                $0.attempt = report.attempt
            }
        }
        if jobs[report.jobID] == nil, let finished, finished.isTerminal, finished.attempt == Int(report.attempt),
            finished.agentId == agentID
        {
            turn.send(acknowledgement, to: agentID)
            return turn
        }
        guard var job = current(report.jobID, attempt: report.attempt, agent: agentID, into: &turn) else { return turn }
        guard job.logLength >= Int(report.logLength) else {
            turn.send(
                .with {
                    $0.logAck = .with {
                        $0.jobID = job.id
                        $0.attempt = report.attempt
                        $0.offset = UInt64(job.logLength)
                    }
                },
                to: agentID)
            return turn
        }
        var state: JobState
        switch report.outcome {
        case .succeeded: state = .succeeded
        case .timedOut: state = .timedOut
        case .cancelled: state = .cancelled
        default: state = .failed
        }
        var reason = report.message.isEmpty ? nil : report.message
        if let cancelReason = job.cancelReason, state != .succeeded {
            state = .cancelled
            reason = cancelReason
        }
        job.exitStatus = Int(report.exitStatus)
        // Checked by `MessageValidation` (a plain `a-z_` token); kept only with a failure.
        job.failure = state == .succeeded || report.failure.isEmpty ? nil : report.failure
        if state == .failed, let rule = Self.retryRule(for: job, lost: false, exitStatus: job.exitStatus) {
            retry(job, agent: agentID, rule: rule, attemptState: .failed, reason: reason ?? "failed", now: now, into: &turn)
        } else {
            finish(job, agent: agentID, state: state, exitStatus: job.exitStatus, reason: reason, now: now, into: &turn)
        }
        turn.send(acknowledgement, to: agentID)
        return turn
    }

    static func logAck(_ chunk: Gantry_V1_LogChunk, length: Int) -> Gantry_V1_Envelope {
        .with {
            $0.logAck = .with {
                $0.jobID = chunk.jobID
                $0.attempt = chunk.attempt
                $0.offset = UInt64(length)
            }
        }
    }
}
