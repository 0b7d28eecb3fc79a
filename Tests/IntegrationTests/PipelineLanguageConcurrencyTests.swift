import Foundation
import GantryProtocol
import Testing

/// Concurrency groups and priorities of the "Pipeline language" suite: what runs when,
/// checked from the timestamps the steps take themselves.
extension PipelineLanguageTests {
    /// A step body that records when it ran: `start`/`end` lines (`date +%s%N`) in
    /// `directory/$GANTRY_JOB_ID`, a line in its log, and a second of work in between.
    static func spanCommand(_ directory: String, sleep: String = "1", indent: Int = 4) -> String {
        let pad = String(repeating: " ", count: indent)
        return [
            "command: |",
            "  echo \"start $(date +%s%N)\" >> \(directory)/$GANTRY_JOB_ID",
            "  echo \"running copy ${GANTRY_PARALLEL_JOB:-none} of ${GANTRY_PARALLEL_JOB_COUNT:-none}\"",
            "  sleep \(sleep)",
            "  echo \"end $(date +%s%N)\" >> \(directory)/$GANTRY_JOB_ID",
        ].map { pad + $0 }.joined(separator: "\n") + "\n"
    }

    /// Two pipelines sharing the group `deploy-production` (limit 1): three plain steps,
    /// then one step of three parallel copies.
    static func groupPipelines(_ directory: String) -> (String, String) {
        let group = "    concurrency: {group: deploy-production, limit: 1}\n"
        let first = "steps:\n" + ["a1", "a2", "a3"].map { "  - key: deploy-\($0)\n" + group + spanCommand(directory) }.joined()
        let second = "steps:\n  - key: deploy-b\n    parallelism: 3\n" + group + spanCommand(directory)
        return (first, second)
    }

    /// Checks that every job ran exactly once (one `start` and one `end`), that no two
    /// [start, end] intervals overlap, and that they ran in the order of `jobs`.
    static func expectSerialized(_ jobs: [API.Job], directory: String) {
        var spans: [(job: API.Job, start: Int, end: Int)] = []
        for job in jobs {
            let marks = Self.marks(directory + "/" + job.id)
            guard let starts = marks["start"], let ends = marks["end"], starts.count == 1, ends.count == 1 else {
                Issue.record("\(job.name) ran \(marks["start"]?.count ?? 0) times: \(marks)")
                continue
            }
            #expect(starts[0] < ends[0])
            spans.append((job, starts[0], ends[0]))
        }
        let byStart = spans.sorted { $0.start < $1.start }
        for (earlier, later) in zip(byStart, byStart.dropFirst()) {
            #expect(
                later.start > earlier.end,
                "\(later.job.name) started \(later.start - earlier.end) ns after \(earlier.job.name) ended: they overlap")
        }
        #expect(byStart.map(\.job.name) == jobs.map(\.name), "ran in this order")
    }

    // MARK: - 4. Concurrency group

    @Test func concurrencyGroupSerializesJobsOfTwoPipelinesInTheOrderTheyBecameRunnable() async throws {
        try await TestCluster.with("lang-group") { cluster in
            for slot in ["1", "2", "3"] { try await cluster.startAgent(slot: slot) }
            let shared = try Self.sharedDirectory(cluster, "spans")
            let (firstYAML, secondYAML) = Self.groupPipelines(shared)
            let first = try await cluster.submit(firstYAML)
            let second = try await cluster.submit(secondYAML)
            // Two agents are idle, yet the second pipeline's jobs wait for the group.
            #expect(second.jobs.map(\.name) == ["deploy-b 1/3", "deploy-b 2/3", "deploy-b 3/3"])
            for job in second.jobs {
                #expect(job.state == "queued" && job.attempt == 0, "\(job.name): \(job.state)")
                #expect(job.reason?.contains("concurrency group `deploy-production`") == true, "\(job.reason ?? "")")
            }
            let a = try await cluster.waitForPipeline(first.id)
            let b = try await cluster.waitForPipeline(second.id)
            #expect(a.state == "succeeded" && b.state == "succeeded")
            let jobs = a.jobs + b.jobs
            #expect(jobs.allSatisfy { $0.state == "succeeded" && $0.attempt == 1 && $0.concurrencyGroup == "deploy-production" })
            Self.expectSerialized(jobs, directory: shared)
            for (index, job) in b.jobs.enumerated() {
                #expect(try await Self.logText(cluster, job) == "running copy \(index) of 3\n")
            }
            #expect(try await Self.logText(cluster, a.jobs[0]) == "running copy none of none\n")
        }
    }

    // MARK: - 5. Concurrency group across a coordinator crash

    @Test func concurrencyGroupHoldsAcrossACoordinatorKill() async throws {
        let arguments = ["--heartbeat-interval", "0.5", "--lease-ttl", "5"]
        try await TestCluster.with("lang-group-restart", coordinatorArguments: arguments) { cluster in
            for slot in ["1", "2", "3"] { try await cluster.startAgent(slot: slot) }
            let shared = try Self.sharedDirectory(cluster, "spans")
            let (firstYAML, secondYAML) = Self.groupPipelines(shared)
            let first = try await cluster.submit(firstYAML)
            let second = try await cluster.submit(secondYAML)
            let running = first.jobs[0]
            try await cluster.waitForJob(running.id, "running") { $0.state == "running" && $0.logBytes > 0 }
            let before = try await cluster.pipeline(first.id).jobs + cluster.pipeline(second.id).jobs
            #expect(before.filter { $0.state == "queued" && $0.attempt == 0 }.count == 5, "\(before.map(\.state))")

            try await cluster.killCoordinator()
            try await cluster.startCoordinator(extraArguments: arguments)

            let a = try await cluster.waitForPipeline(first.id)
            let b = try await cluster.waitForPipeline(second.id)
            #expect(a.state == "succeeded" && b.state == "succeeded")
            let jobs = a.jobs + b.jobs
            for job in jobs {
                #expect(job.state == "succeeded" && job.attempt == 1, "\(job.name): \(job.state), attempt \(job.attempt)")
                #expect(try await cluster.attempts(job.id).map(\.state) == ["succeeded"], "\(job.name)")
            }
            Self.expectSerialized(jobs, directory: shared)
        }
    }

    // MARK: - 6. Priorities

    @Test func prioritiesReorderTheQueueOfABusyAgent() async throws {
        try await TestCluster.with("lang-priority") { cluster in
            try await cluster.startAgent(slot: "1")
            let shared = try Self.sharedDirectory(cluster, "order")
            let release = shared + "/release"
            let blocker = try await cluster.submit(
                """
                steps:
                  - key: blocker
                    command: |
                      echo blocking
                      i=0; while [ ! -e \(release) ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
                      test -e \(release)
                """)
            try await cluster.waitForJob(blocker.jobs[0].id, "running") { $0.state == "running" && $0.logBytes > 0 }

            var submitted: [(priority: Int, pipeline: API.Pipeline)] = []
            for priority in [0, 5, -1, 5] {
                let pipeline = try await cluster.submit(
                    "steps:\n  - key: p\(priority < 0 ? "m" : "")\(abs(priority))\n    priority: \(priority)\n"
                        + "    command: echo \"start $(date +%s%N)\" >> \(shared)/$GANTRY_JOB_ID\n")
                let job = pipeline.jobs[0]
                // The API leaves the default priority (0) out.
                #expect(job.state == "queued" && job.priority == (priority == 0 ? nil : priority), "\(job.state) \(job.priority.map(String.init) ?? "nil")")
                submitted.append((priority, pipeline))
            }
            try Self.write("", to: release)
            #expect(try await cluster.waitForPipeline(blocker.id).state == "succeeded")
            var started: [(index: Int, priority: Int, at: Int)] = []
            for (index, entry) in submitted.enumerated() {
                #expect(try await cluster.waitForPipeline(entry.pipeline.id).state == "succeeded")
                let at = try #require(Self.marks(shared + "/" + entry.pipeline.jobs[0].id)["start"]?.first)
                started.append((index, entry.priority, at))
            }
            let order = started.sorted { $0.at < $1.at }
            #expect(order.map(\.priority) == [5, 5, 0, -1])
            #expect(order.map(\.index) == [1, 3, 0, 2], "equal priorities: the older first")
        }
    }
}
