import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Testing

/// `gantry pipeline upload` in the lifecycle state machine: steps appended to a running
/// pipeline, keys that clash, the uploader's dependents waiting for what it uploaded,
/// dependencies on steps that already ended, refusals, and a restart. Pure value type.
extension JobLifecycleTests {
    // MARK: - Helpers

    static func storedPipeline(_ id: String, uploads: Int = 0) -> StoredPipeline {
        var pipeline = StoredPipeline(
            id: id, file: "p", yaml: "", repository: "", commit: "", branch: "", env: [:], createdAt: wall0)
        pipeline.uploads = uploads
        return pipeline
    }

    /// Uploads `yaml` from the job `lease` names, as the route would: parsed with the
    /// pipeline's steps as context (or without, to reach the lifecycle's own checks).
    mutating func upload(
        _ yaml: String, from lease: Gantry_V1_Lease, attempt: UInt32? = nil, parserContext: Bool = true, at seconds: Double = 0.5
    ) throws -> Result<LifecycleOutput, UploadRefusal> {
        let progress = lifecycle.pipelines[lease.pipelineID]
        let context = PipelineUploadContext(
            existingKeys: Set(progress?.steps.keys.map { $0 } ?? []), existingJobs: progress?.jobIDs.count ?? 0,
            defaultKeyPrefix: "upload-\((progress?.uploads ?? 0) + 1).")
        let definition = try PipelineParser(file: "up.yml", upload: parserContext ? context : nil).parse(yaml)
        let rows = try CoordinatorCore.jobRows(
            for: definition, pipeline: Self.storedPipeline(lease.pipelineID), file: "up.yml", environments: .none,
            firstPosition: progress?.jobIDs.count ?? 0, now: Self.wall(seconds))
        return lifecycle.upload(
            PipelineUpload(
                pipelineID: lease.pipelineID, jobID: lease.jobID, attempt: Int(attempt ?? lease.attempt), jobs: rows),
            now: Self.wall(seconds))
    }

    /// The rows the store would hold after `outputs`: inserts, appends (with the grown
    /// dependencies) and updates, in order.
    static func storedRows(_ outputs: [LifecycleOutput]) -> [String: StoredJob] {
        var rows: [String: StoredJob] = [:]
        for output in outputs { apply(output, to: &rows) }
        return rows
    }

    /// What the store does with one turn's writes to the job rows.
    static func apply(_ output: LifecycleOutput, to rows: inout [String: StoredJob]) {
        for write in output.writes.writes {
            switch write {
            case .insertPipeline(_, let jobs): for job in jobs { rows[job.id] = job }
            case .appendJobs(let append):
                for job in append.jobs { rows[job.id] = job }
                for (id, dependsOn) in append.dependencies { rows[id]?.dependsOn = dependsOn }
            case .updateJob(let job):
                // A lifecycle update writes no `depends_on`: the row keeps its own.
                let dependsOn = rows[job.id]?.dependsOn ?? job.dependsOn
                rows[job.id] = job
                rows[job.id]?.dependsOn = dependsOn
            default: break
            }
        }
    }

    static func appends(_ output: LifecycleOutput) -> [PipelineAppend] {
        output.writes.writes.compactMap { if case .appendJobs(let append) = $0 { return append }; return nil }
    }

    // MARK: - Appending

    @Test mutating func uploadedStepsAreAppendedAfterThePipelinesJobsAndRun() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs("steps:\n  - {key: up, command: gantry pipeline upload}\n")
        let lease = try #require(ready("a/1"))
        let output = try upload(
            """
            steps:
              - {key: lint, command: ./lint}
              - {key: test, command: ./test, depends_on: [lint, up]}
              - command: ./keyless
            """, from: lease
        ).get()
        let append = try #require(Self.appends(output).first)
        #expect(append.jobs.map(\.key) == ["lint", "test", "upload-1.step-3"])
        #expect(append.jobs.map(\.position) == [1, 2, 3] && append.uploads == 1)
        #expect(append.jobs.map(\.state) == [.queued, .waiting, .queued])
        #expect(append.jobs.allSatisfy { $0.pipelineId == jobs[0].pipelineId })
        #expect(lifecycle.pipelines[lease.pipelineID]?.uploads == 1)
        #expect(lifecycle.pipelines[lease.pipelineID]?.jobIDs.count == 4)
        // The uploader ends; the uploaded steps run, `test` after `lint` and `up`.
        let ended = end(lease)
        let (outputs, ran) = drain("a/1")
        #expect(ran == ["lint", "upload-1.step-3", "test"])
        let rows = Self.storedRows([submitted, output, ended] + outputs)
        #expect(rows.values.allSatisfy { $0.state == .succeeded }, "\(rows.values.map { ($0.key, $0.state) })")
        #expect(lifecycle.pipelines.isEmpty && lifecycle.jobs.isEmpty)
    }

    @Test mutating func matrixBlocksConditionsPrioritiesAndGroupsWorkInUploadedSteps() throws {
        try connect("a/1", ready: false)
        _ = try submitJobs("steps:\n  - {key: up, command: u}\n")
        let lease = try #require(ready("a/1"))
        let output = try upload(
            """
            steps:
              - {key: docs, command: d, if: 'branch == "nope"'}
              - block: Ship it?
                key: gate
              - {key: build, command: "make {{matrix.os}}", matrix: {os: [linux, mac]}, priority: 5, depends_on: gate}
              - {key: after-docs, command: a, depends_on: docs, soft_fail: true}
              - {key: deploy, command: d, parallelism: 2, concurrency: {group: g}}
            """, from: lease
        ).get()
        let append = try #require(Self.appends(output).first)
        let byKey = Dictionary(grouping: append.jobs, by: \.key)
        #expect(byKey["docs"]?.first?.state == .skipped)
        #expect(byKey["gate"]?.first?.state == .blocked)
        #expect(byKey["build"]?.map(\.state) == [.waiting, .waiting] && byKey["build"]?.first?.priority == 5)
        #expect(Set(byKey["build"]?.map(\.commands) ?? []) == [["make linux"], ["make mac"]])
        // `after-docs` depended on a step skipped in the same upload: decided at once.
        let rows = Self.storedRows([output])
        let afterDocs = try #require(byKey["after-docs"]?.first)
        #expect(rows[afterDocs.id]?.state == .queued)
        #expect(lifecycle.jobs[try #require(byKey["gate"]?.first?.id)]?.state == .blocked)
        // A concurrency group admits one of the two deploy jobs; the other waits for its slot.
        let deploys = try #require(byKey["deploy"])
        #expect(lifecycle.groups.active["g"]?.keys.sorted() == [deploys[0].id] && lifecycle.groups.isHeld(deploys[1].id))
    }

    // MARK: - Keys

    @Test mutating func aKeyThatClashesIsRefusedAndNothingIsAdded() throws {
        try connect("a/1", ready: false)
        _ = try submitJobs("steps:\n  - {key: up, command: u}\n  - {key: other, command: o}\n")
        let lease = try #require(ready("a/1"))
        let before = lifecycle
        // The parser, with the pipeline as context, points at the key.
        #expect {
            _ = try upload("steps:\n  - {key: fresh, command: f}\n  - key: other\n    command: o\n", from: lease)
        } throws: { error in
            let error = try #require(error as? PipelineError)
            return error.file == "up.yml" && error.line == 3 && error.message.contains("already a step of this pipeline")
        }
        // The lifecycle checks again (another upload may have taken the key meanwhile).
        let refused = try upload("steps:\n  - {key: other, command: o}\n", from: lease, parserContext: false)
        guard case .failure(let refusal) = refused else { Issue.record("the clash was accepted"); return }
        #expect(refusal.kind == .invalid && refusal.description.contains("`other` is already a step"))
        #expect(lifecycle.pipelines == before.pipelines && lifecycle.jobs == before.jobs)
        #expect(lifecycle.nextSequence == before.nextSequence)
    }

    @Test mutating func twoUploadsGiveKeylessStepsDistinctKeys() throws {
        try connect("a/1", ready: false)
        _ = try submitJobs("steps:\n  - {key: up, command: u}\n")
        let lease = try #require(ready("a/1"))
        let first = try upload("steps:\n  - command: one\n", from: lease).get()
        let second = try upload("steps:\n  - command: two\n  - block: ok?\n", from: lease).get()
        #expect(Self.appends(first).first?.jobs.map(\.key) == ["upload-1.step-1"])
        #expect(Self.appends(second).first?.jobs.map(\.key) == ["upload-2.step-1", "upload-2.block-2"])
        #expect(Self.appends(second).first?.uploads == 2)
    }

    // MARK: - Order

    @Test mutating func jobsWaitingForTheUploaderAlsoWaitForTheUploadedSteps() throws {
        try connect("a/1", ready: false)
        try connect("b/1", ready: false)
        let (submitted, jobs) = try submitJobs(
            """
            steps:
              - {key: up, command: u}
              - {key: side, command: s}
              - wait
              - {key: after, command: a}
              - {key: last, command: l, depends_on: after}
            """)
        let lease = try #require(ready("a/1"))
        #expect(lease.stepKey == "up")
        let sideLease = try #require(ready("b/1"))
        let output = try upload("steps:\n  - {key: slow, command: s}\n  - {key: slower, command: t, depends_on: slow}\n", from: lease).get()
        let append = try #require(Self.appends(output).first)
        let after = try #require(jobs.first { $0.key == "after" })
        let last = try #require(jobs.first { $0.key == "last" })
        // Both come after the `wait`, so both waited for `up`; `last` also for `after`.
        #expect(append.dependencies == [after.id: ["up", "side", "slow", "slower"], last.id: ["after", "up", "side", "slow", "slower"]])
        #expect(lifecycle.pipelines[lease.pipelineID]?.pendingDependencies[after.id] == 4)
        #expect(lifecycle.pipelines[lease.pipelineID]?.pendingDependencies[last.id] == 5)
        var outputs = [submitted, output, end(lease), end(sideLease, on: "b/1")]
        // `up` and `side` ended; `after` still waits for the uploaded steps.
        #expect(lifecycle.jobs[after.id]?.state == .waiting)
        let slow = try #require(ready("a/1"))
        #expect(slow.stepKey == "slow")
        outputs.append(end(slow, .failed, exit: 1))
        // `slower` skipped (its dependency failed), and so is `after`: a `wait` after the
        // uploader covers what it uploaded.
        let rows = Self.storedRows(outputs)
        #expect(rows[after.id]?.state == .skipped && rows[after.id]?.reason == "dependency `slow` failed")
        #expect(ready("a/1") == nil && lifecycle.pipelines.isEmpty)
    }

    @Test mutating func anUploadedStepMayDependOnAnEndedStepAndIsDecidedAtOnce() throws {
        try connect("a/1", ready: false)
        _ = try submitJobs("steps:\n  - {key: build, command: b}\n  - {key: up, command: u, depends_on: build}\n")
        let build = try #require(ready("a/1"))
        _ = end(build)
        let lease = try #require(ready("a/1"))
        #expect(lease.stepKey == "up")
        let output = try upload(
            """
            steps:
              - {key: test, command: t, depends_on: build}
              - {key: rescue, command: r, depends_on: build, when: on_failure}
            """, from: lease
        ).get()
        let rows = Self.storedRows([output])
        let added = try #require(Self.appends(output).first?.jobs)
        #expect(rows[added[0].id]?.state == .queued, "build passed: test runs")
        #expect(rows[added[1].id]?.state == .skipped && rows[added[1].id]?.reason == "dependencies passed (when: on_failure)")
    }

    @Test mutating func dependingOnAStepThatWaitsForTheUploaderIsACycle() throws {
        try connect("a/1", ready: false)
        _ = try submitJobs("steps:\n  - {key: up, command: u}\n  - wait\n  - {key: after, command: a}\n")
        let lease = try #require(ready("a/1"))
        let context = PipelineUploadContext(existingKeys: ["up", "after"], existingJobs: 2, later: ["after"])
        #expect {
            _ = try PipelineParser(file: "up.yml", upload: context).parse("steps:\n  - {key: x, command: x, depends_on: after}\n")
        } throws: { error in
            let error = try #require(error as? PipelineError)
            return error.line == 2 && error.message.contains("cycle")
        }
        // Without `later` in the parser's context, the lifecycle's own check refuses it.
        let refused = try upload("steps:\n  - {key: x, command: x, depends_on: after}\n", from: lease)
        guard case .failure(let refusal) = refused else { Issue.record("a cycle was accepted"); return }
        #expect(refusal.kind == .invalid && refusal.description.contains("cycle"))
        // Depending on the uploader itself is no cycle: it runs once the uploader ends.
        let output = try upload("steps:\n  - {key: y, command: y, depends_on: up}\n", from: lease).get()
        #expect(Self.appends(output).first?.jobs.first?.state == .waiting)
    }

    // MARK: - Refusals

    @Test mutating func anUploadIntoAnEndedPipelineOrFromAnEndedAttemptIsRefused() throws {
        try connect("a/1", ready: false)
        _ = try submitJobs("steps:\n  - {key: one, command: o}\n  - {key: two, command: t}\n")
        let one = try #require(ready("a/1"))
        _ = end(one)
        let two = try #require(ready("a/1"))
        guard case .failure(let notHeld) = try upload("steps:\n  - {key: x, command: x}\n", from: one) else {
            Issue.record("an ended attempt uploaded")
            return
        }
        #expect(notHeld.kind == .notHeld && notHeld.description.contains("no longer running"))
        guard case .failure(let stale) = try upload("steps:\n  - {key: x, command: x}\n", from: two, attempt: two.attempt + 1) else {
            Issue.record("another attempt's token uploaded")
            return
        }
        #expect(stale.kind == .notHeld)
        _ = end(two)
        #expect(lifecycle.pipelines.isEmpty)
        guard case .failure(let ended) = try upload("steps:\n  - {key: x, command: x}\n", from: two, parserContext: false) else {
            Issue.record("an ended pipeline grew")
            return
        }
        #expect(ended.kind == .pipelineEnded && ended.description.contains("has ended"))
    }

    @Test mutating func aJobBeingCancelledMayNotUpload() throws {
        try connect("a/1", ready: false)
        _ = try submitJobs("steps:\n  - {key: up, command: u}\n")
        let lease = try #require(ready("a/1"))
        _ = lifecycle.cancel(job: lease.jobID, reason: "cancelled by user", now: Self.wall(0.2))
        guard case .failure(let refusal) = try upload("steps:\n  - {key: x, command: x}\n", from: lease) else {
            Issue.record("a cancelled job uploaded")
            return
        }
        #expect(refusal.kind == .notHeld && refusal.description.contains("being cancelled"))
    }

    @Test mutating func theUploadAndJobLimitsHold() throws {
        try connect("a/1", ready: false)
        _ = try submitJobs("steps:\n  - {key: up, command: u, parallelism: 10}\n")
        let lease = try #require(ready("a/1"))
        // The parser counts the pipeline's jobs towards the limit, with the place.
        let big = "steps:\n  - {key: many, command: x, parallelism: 256}\n  - {key: more, command: x, parallelism: 256}\n"
            + "  - {key: most, command: x, parallelism: 256}\n  - {key: over, command: x, parallelism: 230}\n"
        #expect {
            _ = try upload(big, from: lease)
        } throws: { error in
            let error = try #require(error as? PipelineError)
            return error.line == 5 && error.message.contains("uploads included")
        }
        let refused = try upload(big, from: lease, parserContext: false)
        guard case .failure(let tooMany) = refused else { Issue.record("the job limit was passed"); return }
        #expect(tooMany.kind == .limit)
        lifecycle.pipelines[lease.pipelineID]?.uploads = JobLifecycle.maximumUploadsPerPipeline
        guard case .failure(let uploads) = try upload("steps:\n  - {key: x, command: x}\n", from: lease) else {
            Issue.record("the upload limit was passed")
            return
        }
        #expect(uploads.kind == .limit && uploads.description.contains("uploads"))
    }

    // MARK: - Restart

    @Test mutating func aRestartRebuildsTheSameProgressFromTheStoredRows() throws {
        try connect("a/1", ready: false)
        let (submitted, _) = try submitJobs(
            "steps:\n  - {key: up, command: u}\n  - wait\n  - {key: after, command: a}\n")
        let lease = try #require(ready("a/1"))
        let output = try upload("steps:\n  - {key: u1, command: x}\n  - {key: u2, command: y, depends_on: u1}\n", from: lease).get()
        var rows = Self.storedRows([submitted, output])
        rows[lease.jobID]?.state = .leased
        rows[lease.jobID]?.agentId = "a/1"
        rows[lease.jobID]?.attempt = Int(lease.attempt)
        let all = rows.values.sorted { $0.position < $1.position }
        let live = try #require(lifecycle.pipelines[lease.pipelineID])
        let reloaded = PipelineProgress(pipeline: Self.storedPipeline(lease.pipelineID, uploads: 1), jobs: all)
        #expect(reloaded.steps == live.steps && reloaded.waiting == live.waiting && reloaded.jobIDs == live.jobIDs)
        #expect(reloaded.pendingDependencies == live.pendingDependencies && reloaded.unfinished == live.unfinished)
        #expect(reloaded.uploads == 1)
        #expect(reloaded.dependents.mapValues(Set.init) == live.dependents.mapValues(Set.init))
        let restarted = JobLifecycle(
            configuration: lifecycle.configuration, unfinished: all.filter { !$0.isTerminal },
            pipelines: [lease.pipelineID: reloaded], now: Self.at(5))
        // The uploaded jobs are ordinary jobs after the restart: u1 is queued again.
        #expect(restarted.scheduler.queue.map(\.id) == [try #require(Self.appends(output).first?.jobs.first?.id)])
        let after = try #require(all.first { $0.key == "after" })
        #expect(restarted.jobs[after.id]?.dependsOn == ["up", "u1", "u2"])
        #expect(restarted.pipelines[lease.pipelineID]?.uploads == 1, "the next upload's keyless steps are upload-2.…")
    }

    // MARK: - Random walk

    /// A seeded random walk of submissions, uploads (some refused as cycles), finishes,
    /// cancels and ticks. After every event the progress the lifecycle keeps of each
    /// running pipeline is exactly what a restart would rebuild from the rows written so
    /// far: the same steps, waiting jobs, countdowns and dependents, and upload count.
    @Test mutating func progressAfterUploadsIsWhatARestartRebuilds() throws {
        var random = SplitMix64(seed: 13)
        var leases: [String: Gantry_V1_Lease] = [:]
        var rows: [String: StoredJob] = [:]
        var uploads: [String: Int] = [:]
        var clock = 0.0
        var counter = 0
        var (accepted, refused, ended) = (0, 0, 0)
        for agent in ["a/1", "b/1"] { try connect(agent, capacity: 2) }
        for _ in 0..<1_000 {
            clock += 0.1
            var output = LifecycleOutput()
            // Only leases still held: a fenced-off one would change nothing.
            let held = leases.filter { lifecycle.jobs[$0.key]?.state.isHeld == true && lifecycle.jobs[$0.key]?.attempt == Int($0.value.attempt) }
            switch random.next() % 10 {
            case 0:
                output = try submit(
                    "steps:\n  - {key: up, command: u}\n  - {key: a, command: x}\n  - wait\n  - {key: after, command: z}\n",
                    at: clock
                ).0
            case 1, 2:
                if let lease = held.values.sorted(by: { $0.jobID < $1.jobID }).randomElement(using: &random) {
                    counter += 1
                    let existing = ["a", "up", "after"][Int(random.next() % 3)]
                    let when = random.next() % 4 == 0 ? ", when: always" : ""
                    let yaml = "steps:\n  - {key: u\(counter), command: x, parallelism: \(1 + random.next() % 2)}\n"
                        + "  - {key: v\(counter), command: y, depends_on: [u\(counter), \(existing)]\(when)}\n"
                    switch try upload(yaml, from: lease, at: clock) {
                    case .success(let appended):
                        output = appended
                        accepted += 1
                        uploads[lease.pipelineID, default: 0] += 1
                    case .failure:
                        refused += 1
                    }
                }
            case 3, 4, 5, 6:
                if let lease = held.values.sorted(by: { $0.jobID < $1.jobID }).randomElement(using: &random) {
                    let outcome: Gantry_V1_Outcome = random.next() % 4 == 0 ? .failed : .succeeded
                    let holder = lifecycle.scheduler.holder(of: lease.jobID) ?? "a/1"
                    output = lifecycle.jobFinished(
                        Self.finished(lease, outcome, exit: outcome == .failed ? 1 : 0), from: holder, alreadyFinished: nil,
                        now: Self.wall(clock))
                    leases.removeValue(forKey: lease.jobID)
                    let ready = lifecycle.agentReady(holder, slots: 1, now: Self.at(clock), wallClock: Self.wall(clock))
                    output.writes.append(contentsOf: ready.writes)
                    output.actions += ready.actions
                }
            case 7:
                if random.next() % 4 == 0, let id = lifecycle.jobs.keys.sorted().randomElement(using: &random) {
                    output = lifecycle.cancel(job: id, reason: "r", now: Self.wall(clock))?.output ?? LifecycleOutput()
                }
            case 8:
                output = lifecycle.tick(now: Self.at(clock), wallClock: Self.wall(clock))
            default:
                for agent in ["a/1", "b/1"] {
                    let ready = lifecycle.agentReady(agent, slots: 2, now: Self.at(clock), wallClock: Self.wall(clock))
                    output.writes.append(contentsOf: ready.writes)
                    output.actions += ready.actions
                }
            }
            for action in output.actions {
                if case .send(let envelope, _) = action, envelope.isLease { leases[envelope.lease.jobID] = envelope.lease }
            }
            Self.apply(output, to: &rows)
            ended += Self.jobWrites(output).filter(\.isTerminal).count
            try checkInvariants()
            let byPipeline = Dictionary(grouping: rows.values, by: \.pipelineId)
            for (pipelineID, live) in lifecycle.pipelines {
                let jobs = (byPipeline[pipelineID] ?? []).sorted { $0.position < $1.position }
                let rebuilt = PipelineProgress(
                    pipeline: Self.storedPipeline(pipelineID, uploads: uploads[pipelineID] ?? 0), jobs: jobs)
                #expect(rebuilt.steps == live.steps && rebuilt.jobIDs == live.jobIDs && rebuilt.unfinished == live.unfinished)
                #expect(rebuilt.waiting == live.waiting && rebuilt.pendingDependencies == live.pendingDependencies)
                #expect(rebuilt.uploads == live.uploads)
                let liveDependents = live.dependents.mapValues { Set($0.filter(live.waiting.contains)) }.filter { !$0.value.isEmpty }
                #expect(rebuilt.dependents.mapValues(Set.init) == liveDependents)
                for job in jobs { #expect(job.position == jobs.firstIndex(of: job), "positions are dense") }
            }
        }
        #expect(accepted > 30 && refused > 5 && ended > 100, "accepted \(accepted), refused \(refused), ended \(ended)")
    }
}

/// The store's half: an append is one transaction of ordinary rows, on every back end.
@Suite("Pipeline upload store", .timeLimit(.minutes(1)))
struct PipelineUploadStoreTests {
    @Test(arguments: StoreFactory.all)
    func anAppendStoresTheJobsTheCountAndTheGrownDependencies(_ factory: StoreFactory) throws {
        let scratch = try factory.make()
        let store = scratch.store
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        var pipeline = StoredPipeline(
            id: "p1", file: "p", yaml: "", repository: "", commit: "", branch: "", env: [:], createdAt: now)
        pipeline.submittedBy = "alice"
        let definition = try PipelineParser().parse("steps:\n  - {key: up, command: u}\n  - wait\n  - {key: after, command: a}\n")
        let jobs = try CoordinatorCore.jobRows(for: definition, pipeline: pipeline, file: "p", environments: .none, now: now)
        try store.insert(pipeline: pipeline, jobs: jobs)
        let uploaded = try CoordinatorCore.jobRows(
            for: try PipelineParser().parse("steps:\n  - {key: u1, command: x}\n"), pipeline: pipeline, file: "up.yml",
            environments: .none, firstPosition: 2, now: now)
        try store.commit(
            StoreBatch([
                .appendJobs(
                    PipelineAppend(pipelineID: "p1", jobs: uploaded, uploads: 1, dependencies: [jobs[1].id: ["up", "u1"]]))
            ]))
        let stored = try #require(try store.pipeline(id: "p1"))
        #expect(stored.uploads == 1 && stored.submittedBy == "alice")
        let rows = try store.jobs(pipelineID: "p1")
        #expect(rows.map(\.key) == ["up", "after", "u1"])
        #expect(rows[1].dependsOn == ["up", "u1"])
        // An append into an unknown pipeline fails the whole batch.
        #expect(throws: (any Error).self) {
            try store.commit(StoreBatch([.appendJobs(PipelineAppend(pipelineID: "nope", jobs: [], uploads: 1, dependencies: [:]))]))
        }
    }
}

/// Schema v12 on a database an older release left: its pipelines read as recording no
/// submitter and no uploads, and take uploads from then on.
@Suite("Pipeline upload migration", .timeLimit(.minutes(1)))
struct PipelineUploadMigrationTests {
    @Test func anOlderPipelineReadsAsNoSubmitterAndNoUploads() throws {
        let directory = NSTemporaryDirectory() + "gantry-upload-migration-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/gantry.sqlite"
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let pipeline = StoredPipeline(id: "old", file: "p", yaml: "", repository: "", commit: "", branch: "", env: [:], createdAt: now)
        let definition = try PipelineParser().parse("steps:\n  - {key: a, command: x}\n")
        do {
            let old = try SQLiteStore(path: path, migratingUpTo: "v9: approval gates")
            try old.insert(
                pipeline: pipeline,
                jobs: try CoordinatorCore.jobRows(for: definition, pipeline: pipeline, file: "p", environments: .none, now: now))
        }
        let upgraded = try SQLiteStore(path: path)
        let stored = try #require(try upgraded.pipeline(id: "old"))
        #expect(stored.submittedBy == nil && stored.uploads == 0)
        let added = try CoordinatorCore.jobRows(
            for: try PipelineParser().parse("steps:\n  - {key: b, command: y}\n"), pipeline: stored, file: "up.yml",
            environments: .none, firstPosition: 1, now: now)
        try upgraded.commit(StoreBatch([.appendJobs(PipelineAppend(pipelineID: "old", jobs: added, uploads: 1, dependencies: [:]))]))
        #expect(try upgraded.pipeline(id: "old")?.uploads == 1)
        #expect(try upgraded.jobs(pipelineID: "old").map(\.key) == ["a", "b"])
        // Schema v10: a job stored before it was written for an agent that never checked
        // out (its step clones by itself), so it stays so; a job added after is checked out.
        let jobs = try upgraded.jobs(pipelineID: "old")
        #expect(jobs.first { $0.key == "a" }?.checkout == CheckoutOptions(enabled: false))
        #expect(jobs.first { $0.key == "b" }?.checkout == nil)
    }
}

/// Which earlier upload a retried uploader's upload repeats (`CoordinatorCore.replayed`).
@Suite("Pipeline upload replays")
struct PipelineUploadReplayTests {
    static func job(_ id: String, position: Int, origin: UploadOrigin?) -> StoredJob {
        var job = StoredJob(
            id: id, pipelineId: "p", position: position, key: id, name: id, state: .succeeded, commands: [], env: [:],
            agents: [:], dependsOn: [], timeoutSeconds: nil, cancelGraceSeconds: 10, retry: [], retryCounts: [:],
            cancelReason: nil, attempt: origin?.attempt ?? 1, agentId: nil, exitStatus: nil, reason: nil,
            createdAt: Date(timeIntervalSince1970: 0), queuedAt: nil, startedAt: nil, finishedAt: nil, logLength: 0)
        job.upload = origin
        return job
    }

    @Test func onlyALaterAttemptOfTheSameJobWithTheSameContentReplays() {
        let digest = CoordinatorCore.uploadDigest("steps: []\n", file: "a.yml")
        #expect(digest.count == 64 && digest != CoordinatorCore.uploadDigest("steps: []\n", file: "b.yml"))
        let jobs = [
            Self.job("x2", position: 3, origin: UploadOrigin(job: "up", attempt: 1, digest: digest)),
            Self.job("x1", position: 2, origin: UploadOrigin(job: "up", attempt: 1, digest: digest)),
            Self.job("y", position: 4, origin: UploadOrigin(job: "up", attempt: 2, digest: digest)),
            Self.job("other", position: 5, origin: UploadOrigin(job: "other-uploader", attempt: 1, digest: digest)),
            Self.job("submitted", position: 0, origin: nil),
        ]
        // The attempt that uploaded may upload the same file again: not a replay.
        #expect(CoordinatorCore.replayed(UploadOrigin(job: "up", attempt: 1, digest: digest), in: jobs) == nil)
        // A later attempt repeats the latest earlier attempt's upload, in position order.
        let third = CoordinatorCore.replayed(UploadOrigin(job: "up", attempt: 3, digest: digest), in: jobs)
        #expect(third?.attempt == 2 && third?.jobs == ["y"])
        let second = CoordinatorCore.replayed(UploadOrigin(job: "up", attempt: 2, digest: digest), in: jobs)
        #expect(second?.attempt == 1 && second?.jobs == ["x1", "x2"])
        // Other content, or another uploading job: new.
        #expect(CoordinatorCore.replayed(UploadOrigin(job: "up", attempt: 2, digest: String(repeating: "0", count: 64)), in: jobs) == nil)
        #expect(CoordinatorCore.replayed(UploadOrigin(job: "third", attempt: 2, digest: digest), in: jobs) == nil)
    }
}
