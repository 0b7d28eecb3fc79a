import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Testing

/// The pipeline language in the lifecycle state machine: `when:`, `soft_fail`, `if:`,
/// matrix dependencies, `wait`, priorities, concurrency groups (with a restart), and
/// `gantry retry`. Pure value type, no clock: each test runs in microseconds.
extension JobLifecycleTests {
    // MARK: - Helpers

    /// The agent says it can take one more job; returns what it was leased.
    mutating func ready(_ agent: String, at seconds: Double = 0) -> Gantry_V1_Lease? {
        let output = lifecycle.agentReady(agent, slots: 1, now: Self.at(seconds), wallClock: Self.wall(seconds))
        return Self.leases(output, to: agent).first
    }

    /// Ends `lease` on `agent` and returns the output.
    mutating func end(
        _ lease: Gantry_V1_Lease, on agent: String = "a/1", _ outcome: Gantry_V1_Outcome = .succeeded, exit: Int32 = 0,
        at seconds: Double = 1
    ) -> LifecycleOutput {
        lifecycle.jobFinished(Self.finished(lease, outcome, exit: exit), from: agent, alreadyFinished: nil, now: Self.wall(seconds))
    }

    /// The last row written for each job across `outputs`, by job id.
    static func rows(_ outputs: [LifecycleOutput]) -> [String: StoredJob] {
        var rows: [String: StoredJob] = [:]
        for output in outputs {
            for write in output.writes.writes {
                switch write {
                case .insertPipeline(_, let jobs): for job in jobs { rows[job.id] = job }
                case .updateJob(let job): rows[job.id] = job
                default: break
                }
            }
        }
        return rows
    }

    /// Runs every lease `agent` gets to the end with `outcome(stepKey)`, oldest first,
    /// and returns the outputs and the step keys in the order they ran.
    mutating func drain(
        _ agent: String, outcomes: [String: (Gantry_V1_Outcome, Int32)] = [:], limit: Int = 50
    ) -> (outputs: [LifecycleOutput], ran: [String]) {
        var outputs: [LifecycleOutput] = []
        var ran: [String] = []
        var time = 1.0
        while ran.count < limit, let lease = ready(agent, at: time) {
            ran.append(lease.stepKey)
            let (outcome, exit) = outcomes[lease.stepKey] ?? (.succeeded, 0)
            outputs.append(end(lease, on: agent, outcome, exit: exit, at: time))
            time += 1
        }
        return (outputs, ran)
    }

    // MARK: - when: and outcomes

    @Test mutating func onFailureRollsBackAfterAFailedDeployAndAlwaysStillRuns() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs(
            """
            steps:
              - {key: deploy, command: ./deploy}
              - {key: smoke, command: ./smoke, depends_on: deploy}
              - {key: rollback, command: ./rollback, depends_on: deploy, when: on_failure}
              - {key: notify, command: ./notify, depends_on: deploy, when: always}
            """)
        let (outputs, ran) = drain("a/1", outcomes: ["deploy": (.failed, 3)])
        #expect(ran == ["deploy", "rollback", "notify"])
        let rows = Self.rows([submitted] + outputs)
        let byKey = Dictionary(uniqueKeysWithValues: jobs.map { ($0.key, rows[$0.id]!) })
        #expect(byKey["deploy"]?.state == .failed && byKey["deploy"]?.outcome == .failed)
        #expect(byKey["smoke"]?.state == .skipped && byKey["smoke"]?.outcome == .failed)
        #expect(byKey["smoke"]?.reason == "dependency `deploy` failed")
        #expect(byKey["rollback"]?.state == .succeeded && byKey["notify"]?.state == .succeeded)
        #expect(lifecycle.pipelines.isEmpty && lifecycle.jobs.isEmpty)
    }

    @Test mutating func afterASuccessOnFailureIsSkippedAsPassedAndAlwaysRuns() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs(
            """
            steps:
              - {key: deploy, command: ./deploy}
              - {key: rollback, command: ./rollback, depends_on: deploy, when: on_failure}
              - {key: notify, command: ./notify, depends_on: deploy, when: always}
            """)
        let (outputs, ran) = drain("a/1")
        #expect(ran == ["deploy", "notify"])
        let rows = Self.rows([submitted] + outputs)
        let rollback = try #require(rows[jobs[1].id])
        #expect(rollback.state == .skipped && rollback.outcome == .passed)
        #expect(rollback.reason == "dependencies passed (when: on_failure)")
        let pipeline = StoredPipeline(
            id: jobs[0].pipelineId, file: "p", yaml: "", repository: "", commit: "", branch: "", env: [:], createdAt: Self.wall0)
        #expect(CoordinatorCore.view(pipeline, jobs: jobs.map { rows[$0.id]! }).state == "succeeded")
    }

    @Test mutating func aSoftFailureFailsTheJobButNotThePipeline() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs(
            """
            steps:
              - {key: lint, command: ./lint, soft_fail: [{exit_status: 2}]}
              - {key: flaky, command: ./flaky, soft_fail: true}
              - {key: after, command: ./after, depends_on: [lint, flaky]}
            """)
        let (outputs, ran) = drain("a/1", outcomes: ["lint": (.failed, 2), "flaky": (.timedOut, -1)])
        #expect(ran == ["lint", "flaky", "after"])
        let rows = Self.rows([submitted] + outputs)
        let final = jobs.map { rows[$0.id]! }
        #expect(final.map(\.state) == [.failed, .timedOut, .succeeded])
        #expect(final.map(\.softFailed) == [true, true, false])
        let pipeline = StoredPipeline(
            id: jobs[0].pipelineId, file: "p", yaml: "", repository: "", commit: "", branch: "", env: [:], createdAt: Self.wall0)
        let view = CoordinatorCore.view(pipeline, jobs: final)
        #expect(view.state == "succeeded" && view.jobs[0].softFailed == true && view.jobs[0].outcome == "passed")
    }

    @Test mutating func anExitStatusOutsideSoftFailStillFails() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs(
            "steps:\n  - {key: lint, command: x, soft_fail: [2]}\n  - {key: after, command: y, depends_on: lint}\n")
        let (outputs, ran) = drain("a/1", outcomes: ["lint": (.failed, 1)])
        #expect(ran == ["lint"])
        let rows = Self.rows([submitted] + outputs)
        #expect(rows[jobs[0].id]?.outcome == .failed && rows[jobs[1].id]?.state == .skipped)
    }

    @Test mutating func aFalseConditionSkipsTheStepAtSubmissionAndItsDependentsRun() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs(
            """
            steps:
              - {key: docs, command: ./docs, if: 'branch == "main"'}
              - {key: after, command: ./after, depends_on: docs}
              - {key: deploy, command: ./deploy, if: 'branch == "feature" && !(message =~ /skip deploy/)'}
            """,
            request: API.SubmitPipeline(yaml: "", branch: "feature", message: "fix things\n\nskip deploy please"))
        #expect(jobs.map(\.state) == [.skipped, .waiting, .skipped])
        #expect(jobs[0].outcome == .passed && jobs[0].reason?.hasPrefix("condition is false") == true)
        let (outputs, ran) = drain("a/1")
        #expect(ran == ["after"])
        #expect(Self.rows([submitted] + outputs)[jobs[1].id]?.state == .succeeded)
    }

    @Test mutating func aUserCancelledDependencyCancelsOnSuccessButAlwaysRuns() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs(
            """
            steps:
              - {key: build, command: ./build}
              - {key: test, command: ./test, depends_on: build}
              - {key: cleanup, command: ./cleanup, depends_on: build, when: always}
            """)
        let cancel = lifecycle.cancel(job: jobs[0].id, reason: "cancelled by user", now: Self.wall(1))
        let cancelled = try #require(cancel)
        let (outputs, ran) = drain("a/1")
        #expect(ran == ["cleanup"])
        let rows = Self.rows([submitted, cancelled.output] + outputs)
        #expect(rows[jobs[1].id]?.state == .cancelled && rows[jobs[1].id]?.reason == "dependency `build` cancelled")
    }

    // MARK: - Steps with many jobs

    @Test mutating func dependingOnAMatrixStepWaitsForAllItsJobs() throws {
        try connect("a/1", ready: false)
        try connect("b/1", ready: false)
        let (_, jobs) = try submitJobs(
            """
            steps:
              - key: test
                command: swift test
                matrix: {swift: ["6.0", "6.1"]}
              - {key: release, command: ./release, depends_on: test}
            """)
        #expect(jobs.map(\.key) == ["test", "test", "release"])
        #expect(jobs.map(\.name) == ["test (6.0)", "test (6.1)", "release"])
        let first = try #require(ready("a/1"))
        let second = try #require(ready("b/1"))
        #expect(Set([first.jobID, second.jobID]) == Set(jobs.prefix(2).map(\.id)))
        _ = end(first, on: "a/1")
        #expect(ready("a/1") == nil, "release waits for the other matrix job")
        let done = end(second, on: "b/1")
        #expect(Self.leases(done, to: "a/1").map(\.stepKey) == ["release"], "leased to the idle agent in the same turn")
    }

    @Test mutating func afterAWaitNothingStartsWhileAnythingBeforeRuns() throws {
        try connect("a/1", ready: false)
        try connect("b/1", ready: false)
        let (submitted, jobs) = try submitJobs(
            """
            steps:
              - {key: quick, command: x}
              - {key: slow, command: y}
              - wait
              - {key: cleanup, command: z, when: always}
            """)
        #expect(jobs[2].dependsOn.sorted() == ["quick", "slow"])
        #expect(lifecycle.pipelines[jobs[0].pipelineId]?.pendingDependencies[jobs[2].id] == 2)
        let quick = try #require(ready("a/1"))
        let slow = try #require(ready("b/1"))
        let failed = end(quick.stepKey == "quick" ? quick : slow, on: quick.stepKey == "quick" ? "a/1" : "b/1", .failed, exit: 1)
        #expect(ready(quick.stepKey == "quick" ? "a/1" : "b/1") == nil, "cleanup waits for the slow step")
        #expect(lifecycle.pipelines[jobs[0].pipelineId]?.pendingDependencies[jobs[2].id] == 1, "counted down, not re-walked")
        let done = end(quick.stepKey == "quick" ? slow : quick, on: quick.stepKey == "quick" ? "b/1" : "a/1")
        #expect(Self.rows([submitted, failed, done])[jobs[2].id]?.state == .leased, "then runs, although quick failed")
    }

    // MARK: - Priorities

    @Test mutating func higherPriorityIsLeasedFirstThenTheOlderJob() throws {
        try connect("a/1", ready: false)
        _ = try submitJobs("steps:\n  - {key: low-1, command: x}\n  - {key: low-2, command: x}\n")
        _ = try submitJobs("steps:\n  - {key: high, command: x, priority: 10}\n  - {key: negative, command: x, priority: -5}\n")
        _ = try submitJobs("steps:\n  - {key: low-3, command: x}\n")
        #expect(lifecycle.scheduler.queue.map(\.priority) == [10, 0, 0, 0, -5])
        let (_, ran) = drain("a/1")
        #expect(ran == ["high", "low-1", "low-2", "low-3", "negative"])
    }

    @Test mutating func anAutomaticRetryKeepsItsPlaceInTheQueue() throws {
        try connect("a/1", ready: false)
        _ = try submitJobs("steps:\n  - {key: flaky, command: x, retry: {automatic: [{exit_status: 3, limit: 1}]}}\n")
        let lease = try #require(ready("a/1"))
        _ = try submitJobs("steps:\n  - {key: later, command: x}\n")
        _ = end(lease, .failed, exit: 3)
        #expect(lifecycle.scheduler.queue.map(\.id).first == lease.jobID, "the retry goes before the newer job")
    }

    // MARK: - Concurrency groups

    static let deploy = """
        steps:
          - {key: deploy, command: ./deploy, concurrency: {group: deploy-production, limit: 1}}
        """

    @Test mutating func aGroupOfLimitOneRunsOneJobAtATimeInTheOrderQueued() throws {
        try connect("a/1", ready: false)
        try connect("b/1", ready: false)
        let first = try submitJobs(Self.deploy).1[0]
        let second = try submitJobs(Self.deploy).1[0]
        let third = try submitJobs(Self.deploy).1[0]
        #expect(lifecycle.scheduler.queue.map(\.id) == [first.id])
        #expect(lifecycle.jobs[second.id]?.reason == "waiting for a slot in concurrency group `deploy-production` (limit 1)")
        let running = try #require(ready("a/1"))
        #expect(running.jobID == first.id && ready("b/1") == nil, "b/1 is idle but the group is full")
        let done = end(running)
        #expect(Self.leases(done, to: "b/1").map(\.jobID) == [second.id], "the slot goes to the next job at once")
        #expect(lifecycle.groups.held["deploy-production"]?.map(\.job) == [third.id])
    }

    @Test mutating func cancelInProgressCancelsTheOlderJobsOfTheGroup() throws {
        try connect("a/1", ready: false)
        let yaml = "steps:\n  - {key: deploy, command: x, concurrency: {group: g, cancel_in_progress: true}}\n"
        let first = try submitJobs(yaml).1[0]
        let running = try #require(ready("a/1"))
        let (secondOutput, secondJobs) = try submitJobs(yaml)
        let second = secondJobs[0]
        #expect(secondOutput.frames(to: "a/1").contains { $0.cancel.jobID == first.id }, "a running one is cancelled on its agent")
        #expect(lifecycle.groups.isHeld(second.id), "the newer waits until the cancelled one has stopped")
        let (output, third) = try submitJobs(yaml)
        #expect(Self.rows([output])[second.id]?.state == .cancelled, "a waiting older job is cancelled at once")
        #expect(lifecycle.groups.isHeld(third[0].id))
        let stopped = end(running, .cancelled, exit: -15)
        #expect(Self.rows([stopped])[first.id]?.state == .cancelled)
        #expect(lifecycle.scheduler.queue.map(\.id) == [third[0].id])
    }

    @Test mutating func cancelInProgressNeverCancelsJobsOfTheSamePipeline() throws {
        try connect("a/1", ready: false)
        let (_, jobs) = try submitJobs(
            """
            steps:
              - key: deploy
                command: x
                matrix: {region: [eu, us, ap]}
                concurrency: {group: "deploy-{{matrix.region}}-x", cancel_in_progress: true}
              - key: migrate
                command: y
                parallelism: 3
                concurrency: {group: migrations, cancel_in_progress: true}
            """)
        #expect(jobs.map(\.concurrency?.group) == ["deploy-eu-x", "deploy-us-x", "deploy-ap-x", "migrations", "migrations", "migrations"])
        let (outputs, ran) = drain("a/1")
        #expect(ran.count == 6)
        #expect(Self.rows(outputs).values.allSatisfy { $0.state == .succeeded }, "one after the other, none cancelled")
    }

    /// Superseding a group whose older pipeline has a job with a slot but no agent yet,
    /// and one waiting for a slot: the waiting one must not be admitted into the freed
    /// slot (and leased) only to be cancelled a moment later.
    @Test mutating func cancelInProgressNeverLeasesAJobItIsAboutToCancel() throws {
        try connect("b/1", ready: false)
        let old = """
            steps:
              - {key: d, command: x, agents: {os: none}, concurrency: {group: g}}
              - {key: e, command: y, concurrency: {group: g}}
            """
        let (_, older) = try submitJobs(old)
        #expect(lifecycle.groups.active["g"]?.keys.sorted() == [older[0].id] && lifecycle.groups.isHeld(older[1].id))
        #expect(ready("b/1") == nil, "b/1 is idle: d needs os=none, e waits for the slot")
        let (output, newer) = try submitJobs("steps:\n  - {key: n, command: z, concurrency: {group: g, cancel_in_progress: true}}\n")
        let frames = output.frames(to: "b/1")
        #expect(frames.filter(\.isLease).map(\.lease.jobID) == [newer[0].id], "only the newest job is leased")
        #expect(!frames.contains { $0.cancel.jobID == older[1].id })
        let rows = Self.rows([output])
        #expect(rows[older[0].id]?.state == .cancelled && rows[older[1].id]?.state == .cancelled)
    }

    @Test mutating func aRestartAdmitsExactlyTheJobsThatHeldSlots() throws {
        try connect("a/1", ready: false)
        let yaml = "steps:\n  - {key: deploy, command: x, concurrency: {group: g, limit: 2}}\n"
        var outputs: [LifecycleOutput] = []
        var created: [StoredJob] = []
        for _ in 0..<4 {
            let (output, jobs) = try submitJobs(yaml)
            outputs.append(output)
            created += jobs
        }
        let lease = try #require(ready("a/1"))
        outputs.append(LifecycleOutput())
        // What the store holds: the rows as last written, the leased one included.
        var rows = Self.rows(outputs)
        rows[lease.jobID]?.state = .leased
        rows[lease.jobID]?.agentId = "a/1"
        let unfinished = created.map { rows[$0.id]! }
        var pipelines: [String: PipelineProgress] = [:]
        for job in unfinished {
            pipelines[job.pipelineId] = PipelineProgress(
                pipeline: StoredPipeline(
                    id: job.pipelineId, file: "p", yaml: "", repository: "", commit: "", branch: "", env: [:],
                    createdAt: Self.wall0),
                jobs: [job])
        }
        let restarted = JobLifecycle(
            configuration: lifecycle.configuration, unfinished: unfinished, pipelines: pipelines, now: Self.at(5))
        #expect(restarted.groups.active["g"]?.keys.sorted() == created.prefix(2).map(\.id).sorted())
        #expect(restarted.groups.held["g"]?.map(\.job) == created.suffix(2).map(\.id))
        #expect(restarted.scheduler.queue.map(\.id) == [created[1].id])
        #expect(restarted.nextSequence > unfinished.map(\.sequence).max()!)
    }

    // MARK: - gantry retry

    static func pipeline(of jobs: [StoredJob]) -> StoredPipeline {
        StoredPipeline(
            id: jobs[0].pipelineId, file: "p", yaml: "", repository: "", commit: "", branch: "", env: [:], createdAt: wall0)
    }

    /// Plans and applies a retry of `job` against `rows` (the store's view).
    mutating func retry(_ job: StoredJob, rows: [StoredJob], at seconds: Double) -> Result<(StoredJob, LifecycleOutput), RetryRefusal> {
        RetryPlan.make(job: job.id, pipelineJobs: rows).flatMap { plan in
            lifecycle.retry(plan, pipeline: Self.pipeline(of: rows), pipelineJobs: rows, reason: "retried", now: Self.wall(seconds))
                .map { .success($0) } ?? .failure(.changedMeanwhile)
        }
    }

    @Test mutating func retryingAFailedJobDecidesTheSkippedJobsAfterItAgain() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs(
            "steps:\n  - {key: build, command: x}\n  - {key: test, command: y, depends_on: build}\n")
        let (outputs, ran) = drain("a/1", outcomes: ["build": (.failed, 1)])
        #expect(ran == ["build"] && lifecycle.pipelines.isEmpty)
        let stored = Self.rows([submitted] + outputs)
        let plan = try RetryPlan.make(job: jobs[0].id, pipelineJobs: jobs.map { stored[$0.id]! }).get()
        #expect(plan.reopened.map(\.id) == [jobs[1].id])
        let (retried, output) = try retry(jobs[0], rows: jobs.map { stored[$0.id]! }, at: 10).get()
        #expect(retried.state == .leased && retried.attempt == 2, "leased at once to the idle agent, as attempt 2")
        #expect(Self.rows([output])[jobs[1].id]?.state == .waiting)
        let lease = try #require(Self.leases(output, to: "a/1").first)
        let (after, ranAgain) = drain("a/1")
        #expect(ranAgain.isEmpty, "the agent still holds build")
        let passed = end(lease, at: 11)
        #expect(Self.rows([passed])[jobs[0].id]?.state == .succeeded)
        let (rest, ranLast) = drain("a/1")
        #expect(ranLast == ["test"])
        #expect(lifecycle.pipelines.isEmpty, "the pipeline ended")
        let final = Self.rows([submitted] + outputs + [output] + after + [passed] + rest)
        #expect(
            try retry(jobs[0], rows: jobs.map { final[$0.id]! }, at: 20).get().0.state == .leased,
            "a succeeded job can be run again too")
    }

    /// A step after the retried one that ran (here `always`) is history: what it decided
    /// stays, and the pipeline ends when the retried job does.
    @Test mutating func aRetryStopsAtStepsThatRanSoNothingIsLeftWaiting() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs(
            """
            steps:
              - {key: x, command: x}
              - {key: z, command: z, depends_on: x, when: always}
              - {key: y, command: y, depends_on: z}
            """)
        let (outputs, ran) = drain("a/1", outcomes: ["x": (.failed, 1), "z": (.failed, 1)])
        #expect(ran == ["x", "z"])
        let stored = Self.rows([submitted] + outputs)
        #expect(stored[jobs[2].id]?.state == .skipped)
        let (_, output) = try retry(jobs[0], rows: jobs.map { stored[$0.id]! }, at: 10).get()
        #expect(Self.rows([output])[jobs[2].id] == nil, "y is not reopened: z ran")
        let lease = try #require(Self.leases(output, to: "a/1").first)
        _ = end(lease, at: 11)
        #expect(lifecycle.pipelines.isEmpty && lifecycle.jobs.isEmpty, "nothing is left waiting")
    }

    /// A retry is planned from rows read off the single writer. A job of the pipeline that
    /// ends before the plan is applied makes the read stale: rebuilt from it, the pipeline's
    /// progress would count that job unfinished forever. Such a plan is refused; planned
    /// again from a fresh read, it runs.
    @Test mutating func aRetryPlannedFromRowsThatChangedMeanwhileIsRefused() throws {
        try connect("a/1", ready: false)
        try connect("b/1", ready: false)
        let (submitted, jobs) = try submitJobs("steps:\n  - {key: a, command: x}\n  - {key: g, command: y}\n")
        let leaseA = try #require(ready("a/1"))
        let leaseG = try #require(ready("b/1"))
        #expect(leaseA.jobID == jobs[0].id && leaseG.jobID == jobs[1].id)
        let failed = end(leaseA, .failed, exit: 1)
        let read = Self.rows([submitted, failed])
        #expect(read[jobs[1].id]?.state.isTerminal == false, "read while g still runs")
        let passed = end(leaseG, on: "b/1", at: 5)
        #expect(lifecycle.pipelines.isEmpty, "g ended after the read: the pipeline is over")
        #expect(retry(jobs[0], rows: jobs.map { read[$0.id]! }, at: 10).map(\.0.id) == .failure(.changedMeanwhile))
        #expect(lifecycle.jobs.isEmpty, "nothing changed")
        let fresh = Self.rows([submitted, failed, passed])
        let (retried, _) = try retry(jobs[0], rows: jobs.map { fresh[$0.id]! }, at: 11).get()
        #expect(retried.state == .queued && lifecycle.jobs[retried.id] != nil, "no agent is ready: queued")
    }

    @Test mutating func onlyAJobWhoseDependenciesLetItRunCanBeRetried() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs(
            """
            steps:
              - {key: a, command: x, if: 'branch == "main"'}
              - {key: test, command: y}
              - {key: deploy, command: z, depends_on: test}
            """)
        #expect(RetryPlan.make(job: jobs[0].id, pipelineJobs: jobs).map(\.job.id) == .failure(.skippedByCondition))
        #expect(RetryPlan.make(job: jobs[1].id, pipelineJobs: jobs).map(\.job.id) == .failure(.notFinished(.queued)))
        // deploy cancelled while test still runs: its dependencies have not ended.
        let lease = try #require(ready("a/1"))
        let cancel = lifecycle.cancel(job: jobs[2].id, reason: "cancelled by user", now: Self.wall(1))
        let cancelled = try #require(cancel)
        var rows = Self.rows([submitted, cancelled.output])
        rows[jobs[1].id]?.state = .running
        #expect(
            RetryPlan.make(job: jobs[2].id, pipelineJobs: jobs.map { rows[$0.id]! }).map(\.job.id) == .failure(.dependenciesRunning))
        // test fails: deploy would not run either (retry test instead).
        let failed = end(lease, .failed, exit: 1)
        rows = Self.rows([submitted, cancelled.output, failed])
        #expect(
            RetryPlan.make(job: jobs[2].id, pipelineJobs: jobs.map { rows[$0.id]! }).map(\.job.id) == .failure(.decidedByDependencies))
    }

    @Test func aConditionTooCostlyForTheCommitMessageIsRefusedWithItsPlace() throws {
        let yaml = "steps:\n  - {key: a, command: x, if: 'message =~ /(.*a){60}q/ || message =~ /(.*b){60}q/'}\n"
        let definition = try PipelineParser(file: "p.yml").parse(yaml)
        let short = API.SubmitPipeline(yaml: yaml, message: "fix: a short message")
        #expect(try CoordinatorCore.rows(for: short, definition: definition, now: Self.wall0).1.map(\.state) == [.skipped])
        let long = API.SubmitPipeline(yaml: yaml, message: String(repeating: "fix the thing; ", count: 4000))
        #expect {
            _ = try CoordinatorCore.rows(for: long, definition: definition, now: Self.wall0)
        } throws: { error in
            guard let error = error as? PipelineError else { return false }
            return error.line == 2 && error.message.contains("regex steps")
        }
    }
}
