import ArgumentParser
import Foundation
import GantryCLIKit
import GantryProtocol

/// Follows a pipeline to its end: each job's log (prefixed by the job's name), the state
/// of every step (`ProgressOutput`), then how each job ended; exits 0 only if the pipeline
/// succeeded, 1 if it failed or was cancelled (and says which).
///
/// Connections are bounded: a job's log is followed only once it has been leased (never
/// while it waits), a follower ends when its job does, and at most `maximumFollowers`
/// logs are followed at once; the rest wait for a free follower and then resume from
/// their start, so nothing is lost, only later. The pipeline itself is polled once a
/// second over one more connection. The HTTP client allows `APIClient.connectionsPerHost`
/// connections, above this bound: a pipeline with more running steps than that is rare,
/// and one connection per step for every step of a 1,000-job pipeline is not what a
/// laptop or the coordinator's file descriptors should pay for.
///
/// Every read survives a restart of the coordinator: a failed poll is tried again with a
/// backoff (`Backoff`), and logs resume where they stopped (`LogFollower`).
struct PipelineFollower {
    let client: APIClient
    let json: Bool
    /// The labels each step needs, when the file is known: a step queued for longer than
    /// `unrunnableAfter` says which labels no connected agent offers.
    var steps: StepRequirements? = nil

    static let pollInterval = Duration.seconds(1)
    static let maximumFollowers = 24
    static let unrunnableAfter: TimeInterval = 4
    /// How often the agents are read while a job waits for one (they rarely change).
    static let agentsInterval: TimeInterval = 5

    private enum Event: Sendable {
        case logEnded(String)
        case polled(API.Pipeline)
    }

    func follow(_ pipeline: API.Pipeline) async throws {
        if !json {
            for job in pipeline.jobs {
                FileHandle.standardError.write(
                    Data("gantry: job \(TerminalText.printable(job.id, limit: 80))  \(TerminalText.printable(job.name, limit: 80))\n".utf8))
            }
        }
        let output = ProgressOutput(pipeline: pipeline, live: !json && ProgressOutput.isLive())
        let client = client
        let interrupts = InterruptHandler(pipelineID: pipeline.id, pause: { await output.setPaused($0) }) {
            do {
                let _: API.Pipeline = try await client.send(
                    "POST", APIRoute.cancelPipeline.path(["id": pipeline.id]), body: Optional<API.SubmitPipeline>.none)
            } catch {
                await output.notice("could not cancel: \(error)")
            }
        }
        defer { interrupts.remove() }
        let final = try await followUntilEnded(pipeline, output: output)
        await output.finish()
        try report(final)
    }

    /// Runs the followers and the poll until the pipeline has ended and every log that
    /// was started has been read to its end; returns the pipeline as it ended.
    private func followUntilEnded(_ pipeline: API.Pipeline, output: ProgressOutput) async throws -> API.Pipeline {
        let client = client
        let json = json
        let poller = Poller(client: client, pipelineID: pipeline.id, output: output)
        let steps = steps
        return try await withThrowingTaskGroup(of: Event.self) { group in
            var waitNotes = WaitNotes(steps: steps)
            var latest = pipeline
            var started: Set<String> = []
            var active = 0
            func startFollowers() {
                guard !json else { return }
                for job in latest.jobs where active < Self.maximumFollowers && !started.contains(job.id) {
                    guard Self.hasLog(job) else { continue }
                    started.insert(job.id)
                    active += 1
                    group.addTask {
                        let events = LogFollower.Events(
                            bytes: { await output.write($0, job: job) },
                            attempt: { await output.attemptChanged(job: job, previous: $0, current: $1, reason: $2) },
                            connection: { lost, detail in
                                await output.notice(lost ? "lost the log of \(job.name) (\(detail)); reconnecting" : "following \(job.name) again")
                            })
                        try await LogFollower(client: client, jobID: job.id).follow(events)
                        await output.flush(job: job)
                        return .logEnded(job.id)
                    }
                }
            }
            await output.update(latest, notes: [:])
            startFollowers()
            if latest.state == "running" { group.addTask { .polled(try await poller.next()) } }
            while let event = try await group.next() {
                switch event {
                case .logEnded:
                    active -= 1
                case .polled(let pipeline):
                    latest = pipeline
                    let notes = await waitNotes.notes(for: pipeline, client: client)
                    await output.update(pipeline, notes: notes)
                    if pipeline.state == "running" { group.addTask { .polled(try await poller.next()) } }
                }
                startFollowers()
            }
            return latest
        }
    }

    /// Whether a job has a log worth following now: it was leased, or it ended after
    /// writing something.
    static func hasLog(_ job: API.Job) -> Bool {
        ["leased", "running"].contains(job.state) || (job.isTerminal && job.logBytes > 0)
    }

    /// The summary, and the exit: 0 only for a pipeline that succeeded.
    private func report(_ final: API.Pipeline) throws {
        if json {
            print(String(decoding: try API.encoder.encode(final), as: UTF8.self))
        } else {
            var text = "\n"
            for job in final.jobs {
                let status = job.exitStatus.map { " (exit status \($0))" } ?? ""
                let reason = job.reason.map { ": \(TerminalText.printable($0, limit: 300))" } ?? ""
                let mark =
                    job.state == "succeeded" ? "✓" : job.softFailed == true ? "!" : job.state == "skipped" ? "-" : job.state == "cancelled" ? "×" : "✗"
                let soft = job.softFailed == true ? " (soft fail)" : ""
                // The agent's own failure (such as `checkout_failed`) before the exit status:
                // the commands did not decide it.
                let failure = job.failure.map { " [\(TerminalText.printable($0, limit: 80))]" } ?? ""
                text += "\(mark) \(TerminalText.printable(job.name, limit: 80)) \(TerminalText.printable(job.state, limit: 20))"
                    + "\(failure)\(soft)\(status)\(job.state == "succeeded" ? "" : reason)  \(TerminalText.printable(job.id, limit: 80))\n"
            }
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        guard final.state == "succeeded" else {
            if !json {
                let failed = final.jobs.filter { $0.outcome == "failed" || $0.outcome == "cancelled" }
                let list = failed.map {
                    "\(TerminalText.printable($0.name, limit: 80)) \($0.state)\($0.failure.map { " (\(TerminalText.printable($0, limit: 80)))" } ?? "")\($0.exitStatus.map { " with exit status \($0)" } ?? "")"
                }
                let state = final.state == "cancelled" ? "cancelled" : TerminalText.printable(final.state, limit: 20)
                FileHandle.standardError.write(
                    Data("gantry: pipeline \(TerminalText.printable(final.id, limit: 80)) \(state)\(list.isEmpty ? "" : ": " + list.joined(separator: ", "))\n".utf8))
            }
            throw ExitCode(CLIExit.failed)
        }
    }
}

/// Reads the pipeline once a poll interval, through a coordinator restart.
struct Poller: Sendable {
    let client: APIClient
    let pipelineID: String
    let output: ProgressOutput

    func next() async throws -> API.Pipeline {
        try await Task.sleep(for: PipelineFollower.pollInterval)
        var backoff = Backoff()
        var lost = false
        // Bounded by the backoff's budget.
        while true {
            do {
                let pipeline: API.Pipeline = try await client.send("GET", APIRoute.getPipeline.path(["id": pipelineID]))
                if lost { await output.notice("the coordinator answers again") }
                return pipeline
            } catch let error as CLIError where LogFollower.isTransient(error) {
                if !lost {
                    lost = true
                    await output.notice("cannot read the pipeline (\(error.description.prefix(200))); trying again")
                }
                try await LogFollower.wait(&backoff, error)
            }
        }
    }
}

/// Why queued jobs wait: after `unrunnableAfter` in the queue, a job whose labels no
/// connected agent offers says so. The agents are read at most every `agentsInterval`.
struct WaitNotes {
    let steps: StepRequirements?
    private var agents: [API.Agent] = []
    private var agentsReadAt: Date?
    /// When each job was first seen queued.
    private var queuedSince: [String: Date] = [:]

    init(steps: StepRequirements?) {
        self.steps = steps
    }

    mutating func notes(for pipeline: API.Pipeline, client: APIClient) async -> [String: String] {
        guard let steps else { return [:] }
        let now = Date()
        var waiting: [API.Job] = []
        for job in pipeline.jobs {
            guard job.state == "queued" else {
                queuedSince[job.id] = nil
                continue
            }
            let since = queuedSince[job.id] ?? now
            queuedSince[job.id] = since
            if now.timeIntervalSince(since) >= PipelineFollower.unrunnableAfter { waiting.append(job) }
        }
        guard !waiting.isEmpty else { return [:] }
        if agentsReadAt.map({ now.timeIntervalSince($0) >= PipelineFollower.agentsInterval }) ?? true {
            agentsReadAt = now
            if let read: [API.Agent] = try? await client.sendAllPages(APIRoute.listAgents.path) { agents = read }
        }
        var notes: [String: String] = [:]
        for job in waiting {
            guard let needed = steps.labels[job.key] else { continue }
            notes[job.id] = StepRequirements.unrunnable(needed: needed, agents: agents)
        }
        return notes
    }
}
