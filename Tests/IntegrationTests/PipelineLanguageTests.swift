import Foundation
import GantryProtocol
import Subprocess
import Testing

/// The pipeline language of docs/pipeline.md (issue 14) end to end, with the real
/// coordinator, agents and `gantry` CLI on 127.0.0.1: matrix fan-out, `when:`,
/// `soft_fail`, `if:`, `gantry retry` / `gantry rebuild` here; concurrency groups (also
/// across a coordinator crash) and priorities in `PipelineLanguageConcurrencyTests.swift`.
/// Ordering is checked from timestamps the steps take themselves (`date +%s%N`), since the
/// API's dates have whole seconds.
@Suite("Pipeline language", .serialized, .timeLimit(.minutes(5)))
struct PipelineLanguageTests {
    // MARK: - Helpers

    struct CLIResult {
        var status: TerminationStatus
        var output: String
        var error: String
        var all: String { output + error }
    }

    /// Runs the `gantry` CLI against the cluster (admin token unless `token`).
    static func gantry(_ cluster: TestCluster, _ arguments: [String], token: String? = nil) async throws -> CLIResult {
        let result = try await Subprocess.run(
            .path(.init(cluster.binaries + "/gantry")),
            arguments: Arguments(arguments + ["--server", cluster.serverURL, "--token", token ?? cluster.adminToken]),
            output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        return CLIResult(status: result.terminationStatus, output: result.standardOutput, error: result.standardError)
    }

    /// The pipeline id from `gantry run`'s "gantry: pipeline ID submitted" (or `rebuild
    /// --follow`'s "gantry: pipeline ID rebuilds OLD") line.
    static func pipelineID(in text: String) throws -> String {
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("gantry: pipeline ") }, "\(text)")
        return String(line.split(separator: " ")[2])
    }

    /// A directory under the cluster's root that steps can write to whatever user they
    /// run as (like StepIsolationTests, the root is opened for traversal).
    static func sharedDirectory(_ cluster: TestCluster, _ name: String) throws -> String {
        chmod(cluster.root, 0o755)
        let path = cluster.root + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        chmod(path, 0o777)
        return path
    }

    /// `start`/`end` lines (`date +%s%N`) a step appended to `path`, by kind.
    static func marks(_ path: String) -> [String: [Int]] {
        var marks: [String: [Int]] = [:]
        for line in ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let nanoseconds = Int(parts[1]) { marks[String(parts[0]), default: []].append(nanoseconds) }
        }
        return marks
    }

    static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    static func job(_ pipeline: API.Pipeline, _ key: String) throws -> API.Job {
        try #require(pipeline.jobs.first { $0.key == key }, "no job \(key) in \(pipeline.jobs.map(\.key))")
    }

    static func logText(_ cluster: TestCluster, _ job: API.Job, attempt: Int? = nil) async throws -> String {
        String(decoding: try await cluster.log(job.id, attempt: attempt), as: UTF8.self)
    }

    // MARK: - 1. Matrix

    @Test func matrixOfSixJobsSpreadsOverThreeAgentsAndItsDependentWaitsForAll() async throws {
        try await TestCluster.with("lang-matrix") { cluster in
            for slot in ["1", "2", "3"] { try await cluster.startAgent(slot: slot) }
            let shared = try Self.sharedDirectory(cluster, "marks")
            // 2 × 3 = 6, minus bsd-3, plus mac-9: 6 jobs.
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: test
                    name: Test
                    command: |
                      echo "value={{matrix.os}}-{{ matrix.v }}"
                      sleep 1
                      echo "end $(date +%s%N)" >> \(shared)/ends
                    matrix:
                      os: [linux, bsd]
                      v: ["1", "2", "3"]
                      exclude:
                        - {os: bsd, v: "3"}
                      include:
                        - {os: mac, v: "9"}
                  - key: after
                    depends_on: test
                    command: echo "start $(date +%s%N)" >> \(shared)/after
                """)
            let expected = [("linux", "1"), ("linux", "2"), ("linux", "3"), ("bsd", "1"), ("bsd", "2"), ("mac", "9")]
            #expect(pipeline.jobs.filter { $0.key == "test" }.map(\.name) == expected.map { "Test (\($0.0), \($0.1))" })
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "succeeded")
            let matrixJobs = done.jobs.filter { $0.key == "test" }
            #expect(matrixJobs.count == 6)
            for (job, (os, v)) in zip(matrixJobs, expected) {
                #expect(job.matrix == ["os": os, "v": v], "\(job.name)")
                #expect(job.state == "succeeded" && job.outcome == "passed" && job.attempt == 1, "\(job.name): \(job.state)")
                #expect(try await Self.logText(cluster, job) == "value=\(os)-\(v)\n", "\(job.name)")
            }
            let agents = Set(matrixJobs.compactMap(\.agentId))
            #expect(agents.count == 3, "the matrix ran on \(agents)")

            // The dependent started only after the last matrix job finished.
            let after = try Self.job(done, "after")
            #expect(after.state == "succeeded")
            #expect(after.dependsOn == ["test"])
            let lastFinished = try #require(matrixJobs.compactMap(\.finishedAt).max())
            #expect(try #require(after.startedAt) >= lastFinished)
            let ends = Self.marks(shared + "/ends")["end"] ?? []
            let start = try #require(Self.marks(shared + "/after")["start"]?.first)
            #expect(ends.count == 6)
            #expect(start > ends.max() ?? .max, "after started \(start), matrix ends \(ends)")
        }
    }

    // MARK: - 2. when: on_failure / always

    static func deployYAML(_ deploy: String) -> String {
        """
        steps:
          - key: deploy
            command: "\(deploy)"
          - key: smoke
            depends_on: deploy
            command: echo smoke testing
          - key: rollback
            depends_on: deploy
            when: on_failure
            command: echo rolling back
          - key: notify
            depends_on: deploy
            when: always
            command: echo notified
        """
    }

    @Test func onFailureRollsBackAndAlwaysNotifies() async throws {
        try await TestCluster.with("lang-when") { cluster in
            try await cluster.startAgent(slot: "1")
            try await cluster.startAgent(slot: "2")
            let failing = try await cluster.submit(Self.deployYAML("echo deploying; exit 3"))
            let passing = try await cluster.submit(Self.deployYAML("echo deploying"))

            // A: deploy fails.
            let a = try await cluster.waitForPipeline(failing.id)
            #expect(a.state == "failed")
            let deployA = try Self.job(a, "deploy")
            #expect(deployA.state == "failed" && deployA.exitStatus == 3 && deployA.outcome == "failed")
            let rollbackA = try Self.job(a, "rollback")
            #expect(rollbackA.state == "succeeded" && rollbackA.attempt == 1, "\(rollbackA.state) \(rollbackA.reason ?? "")")
            #expect(try await Self.logText(cluster, rollbackA) == "rolling back\n")
            #expect(try #require(rollbackA.startedAt) >= (try #require(deployA.finishedAt)))
            let notifyA = try Self.job(a, "notify")
            #expect(notifyA.state == "succeeded" && notifyA.attempt == 1)
            #expect(try await Self.logText(cluster, notifyA) == "notified\n")
            let smokeA = try Self.job(a, "smoke")
            #expect(smokeA.state == "skipped" && smokeA.outcome == "failed" && smokeA.attempt == 0 && smokeA.logBytes == 0)
            #expect(smokeA.reason?.contains("dependency `deploy` failed") == true, "\(smokeA.reason ?? "")")

            // B: deploy succeeds.
            let b = try await cluster.waitForPipeline(passing.id)
            #expect(b.state == "succeeded")
            #expect(try Self.job(b, "deploy").state == "succeeded")
            #expect(try Self.job(b, "smoke").state == "succeeded")
            let rollbackB = try Self.job(b, "rollback")
            #expect(rollbackB.state == "skipped" && rollbackB.outcome == "passed" && rollbackB.attempt == 0)
            let notifyB = try Self.job(b, "notify")
            #expect(notifyB.state == "succeeded" && notifyB.outcome == "passed")
            #expect(try await Self.logText(cluster, notifyB) == "notified\n")
        }
    }

    // MARK: - 3. soft_fail

    @Test func softFailKeepsThePipelineGreenAndRunsTheDependent() async throws {
        try await TestCluster.with("lang-soft-fail") { cluster in
            try await cluster.startAgent(slot: "1")
            let file = cluster.root + "/soft.yml"
            try Self.write(
                """
                steps:
                  - key: flaky
                    command: "echo flaky; exit 2"
                    soft_fail: [{exit_status: 2}]
                  - key: after
                    depends_on: flaky
                    command: echo after the soft fail
                """, to: file)
            let run = try await Self.gantry(cluster, ["run", file])
            #expect(run.status == .exited(0), "\(run.all)")
            #expect(run.output.contains("[flaky] flaky\n"), "\(run.output)")
            #expect(run.output.contains("[after] after the soft fail\n"), "\(run.output)")
            #expect(run.output.contains("! flaky failed (soft fail) (exit status 2)"), "\(run.output)")
            #expect(run.output.contains("✓ after succeeded"), "\(run.output)")

            let pipeline = try await cluster.pipeline(try Self.pipelineID(in: run.error))
            #expect(pipeline.state == "succeeded")
            let flaky = try Self.job(pipeline, "flaky")
            #expect(flaky.state == "failed" && flaky.softFailed == true && flaky.outcome == "passed" && flaky.exitStatus == 2)
            let after = try Self.job(pipeline, "after")
            #expect(after.state == "succeeded" && after.attempt == 1)

            // An exit status the list does not name is a real failure.
            let hard = try await cluster.submit(
                "steps:\n  - key: flaky\n    command: exit 3\n    soft_fail: [2]\n  - key: after\n    depends_on: flaky\n    command: 'true'\n")
            let failed = try await cluster.waitForPipeline(hard.id)
            #expect(failed.state == "failed")
            let hardFlaky = try Self.job(failed, "flaky")
            #expect(hardFlaky.state == "failed" && hardFlaky.softFailed != true && hardFlaky.outcome == "failed")
            #expect(try Self.job(failed, "after").state == "skipped")
        }
    }

    // MARK: - 7. if:

    @Test func conditionsSkipStepsAtSubmissionAndABadOneIsRefusedWithItsPlace() async throws {
        try await TestCluster.with("lang-if") { cluster in
            try await cluster.startAgent(slot: "1")
            try await cluster.startAgent(slot: "2")

            // A condition that does not parse: 422 at the offending `&`, nothing stored.
            let bad = "steps:\n  - key: a\n    command: echo a\n    if: 'branch == \"main\" & tag == \"v1\"'\n"
            let (status, data) = try await cluster.request(
                .POST, "/v1/pipelines", body: try API.encoder.encode(API.SubmitPipeline(yaml: bad, file: "ci/bad-if.yml")))
            #expect(status == 422, "\(String(decoding: data, as: UTF8.self))")
            let refusal = try API.decoder.decode(API.ErrorBody.self, from: data)
            #expect(refusal.error.code == "invalid_pipeline")
            #expect(refusal.error.file == "ci/bad-if.yml")
            #expect(refusal.error.line == 4)
            // `    if: '` is 9 columns; the `&` is 17 characters into the expression.
            #expect(refusal.error.column == 27, "\(refusal)")
            #expect(refusal.error.message.contains("`&&`"), "\(refusal)")
            let (_, jobs) = try await cluster.request(.GET, "/v1/jobs")
            #expect(try API.decoder.decode([API.Job].self, from: jobs).isEmpty)
            let badFile = cluster.root + "/bad-if.yml"
            try Self.write(bad, to: badFile)
            let refused = try await Self.gantry(cluster, ["run", badFile])
            #expect(refused.status != .exited(0))
            #expect(refused.all.contains("bad-if.yml:4:27:"), "\(refused.all)")

            let file = cluster.root + "/if.yml"
            try Self.write(
                """
                steps:
                  - key: build
                    command: echo building
                  - key: deploy-main
                    depends_on: build
                    if: 'branch == "main"'
                    command: echo deploying main
                  - key: deploy
                    depends_on: build
                    if: '!(message =~ /skip deploy/)'
                    command: echo deploying
                  - key: feature
                    if: 'branch == "feature" && env.LEVEL == "loose" && tag == ""'
                    command: echo feature branch
                  - key: after
                    depends_on: [deploy-main, deploy]
                    command: echo after the skipped ones
                  - key: announce
                    depends_on: after
                    command: echo announcing
                """, to: file)
            let run = try await Self.gantry(
                cluster, ["run", file, "--branch", "feature", "--message", "wip [skip deploy]", "--env", "LEVEL=loose"])
            #expect(run.status == .exited(0), "\(run.all)")
            let pipeline = try await cluster.pipeline(try Self.pipelineID(in: run.error))
            #expect(pipeline.state == "succeeded")
            #expect(pipeline.branch == "feature" && pipeline.message == "wip [skip deploy]" && pipeline.source == "api")
            for key in ["deploy-main", "deploy"] {
                let job = try Self.job(pipeline, key)
                #expect(job.state == "skipped" && job.outcome == "passed" && job.attempt == 0 && job.logBytes == 0, "\(key)")
            }
            for (key, log) in [
                ("build", "building"), ("feature", "feature branch"), ("after", "after the skipped ones"), ("announce", "announcing"),
            ] {
                let job = try Self.job(pipeline, key)
                #expect(job.state == "succeeded" && job.attempt == 1, "\(key): \(job.state)")
                #expect(try await Self.logText(cluster, job) == log + "\n", "\(key)")
            }
            #expect(!run.output.contains("deploying"), "\(run.output)")
        }
    }

    // MARK: - 8. retry and rebuild

    @Test func retryRunsAFailedJobAgainAndItsDependentFollowsThenRebuildStartsAnew() async throws {
        try await TestCluster.with("lang-retry") { cluster in
            try await cluster.startAgent(slot: "1")
            let shared = try Self.sharedDirectory(cluster, "markers")
            let marker = shared + "/fixed"
            let yaml = """
                steps:
                  - key: build
                    command: |
                      if [ ! -e \(marker) ]; then echo "no marker yet"; exit 4; fi
                      echo built
                  - key: test
                    depends_on: build
                    command: echo testing
                """
            let (created, body) = try await cluster.request(
                .POST, "/v1/pipelines",
                body: try API.encoder.encode(
                    API.SubmitPipeline(yaml: yaml, file: "ci/retry.yml", branch: "main", tag: "v1.0", message: "first try")))
            #expect(created == 201, "\(String(decoding: body, as: UTF8.self))")
            let submitted = try API.decoder.decode(API.Pipeline.self, from: body)
            let first = try await cluster.waitForPipeline(submitted.id)
            #expect(first.state == "failed")
            let build = try Self.job(first, "build")
            #expect(build.state == "failed" && build.exitStatus == 4 && build.attempt == 1)
            let skipped = try Self.job(first, "test")
            #expect(skipped.state == "skipped" && skipped.outcome == "failed")

            // A viewer may read but not retry; nothing changes.
            let viewer = try await AuthorizationTests.hostToken(cluster, identity: "watcher", role: "viewer")
            let (forbidden, refusal) = try await cluster.request(.POST, "/v1/jobs/\(build.id)/retry", token: viewer)
            #expect(forbidden == 403, "\(String(decoding: refusal, as: UTF8.self))")
            let viewerCLI = try await Self.gantry(cluster, ["retry", build.id], token: viewer)
            #expect(viewerCLI.status != .exited(0), "\(viewerCLI.all)")
            let untouched = try await cluster.job(build.id)
            #expect(untouched.state == "failed" && untouched.attempt == 1)

            // Fixed: retry by hand.
            try Self.write("", to: marker)
            let retry = try await Self.gantry(cluster, ["retry", build.id])
            #expect(retry.status == .exited(0), "\(retry.all)")
            #expect(retry.output.contains("job \(build.id) (build): "), "\(retry.output)")
            try await cluster.waitForJob(build.id, "attempt 2 ended") { $0.attempt == 2 && $0.isTerminal }
            let second = try await cluster.waitForPipeline(submitted.id)
            #expect(second.state == "succeeded")
            let rebuilt = try Self.job(second, "build")
            #expect(rebuilt.state == "succeeded" && rebuilt.attempt == 2 && rebuilt.outcome == "passed")
            #expect(try await cluster.attempts(build.id).map(\.state) == ["failed", "succeeded"])
            #expect(try await Self.logText(cluster, rebuilt, attempt: 1) == "no marker yet\n")
            #expect(try await Self.logText(cluster, rebuilt) == "built\n")
            let test = try Self.job(second, "test")
            #expect(test.state == "succeeded" && test.attempt == 1 && test.outcome == "passed", "\(test.state)")
            #expect(try #require(test.startedAt) >= (try #require(rebuilt.finishedAt)))
            #expect(try await Self.logText(cluster, test) == "testing\n")

            // Rebuild: a new pipeline from the same file, pointing back at the old one.
            let rebuild = try await Self.gantry(cluster, ["rebuild", submitted.id, "--follow"])
            #expect(rebuild.status == .exited(0), "\(rebuild.all)")
            #expect(rebuild.output.contains("[build] built"), "\(rebuild.output)")
            let newID = try Self.pipelineID(in: rebuild.error)
            #expect(newID != submitted.id)
            let fresh = try await cluster.pipeline(newID)
            #expect(fresh.rebuildOf == submitted.id)
            #expect(fresh.branch == "main" && fresh.tag == "v1.0" && fresh.message == "first try", "\(fresh)")
            #expect(fresh.state == "succeeded")
            #expect(fresh.jobs.map(\.key) == ["build", "test"])
            #expect(fresh.jobs.allSatisfy { $0.state == "succeeded" && $0.attempt == 1 })
            #expect(Set(fresh.jobs.map(\.id)).isDisjoint(with: second.jobs.map(\.id)))
            // The old pipeline is left as it was.
            let old = try await cluster.pipeline(submitted.id)
            let oldBuild = try Self.job(old, "build")
            #expect(old.state == "succeeded" && old.rebuildOf == nil && oldBuild.attempt == 2)
        }
    }

    /// `POST /v1/jobs/{id}/retry` answers with the job after the retry's turn, in which an
    /// idle agent may already have been leased it (its attempt counted): the CLI must
    /// announce the attempt that runs, not one more.
    @Test func retryAnnouncesTheAttemptThatRuns() async throws {
        try await TestCluster.with("lang-retry-attempt") { cluster in
            try await cluster.startAgent(slot: "1")
            let pipeline = try await cluster.submit("steps:\n  - key: build\n    command: echo \"attempt $GANTRY_ATTEMPT\"; exit 1\n")
            let failed = try await cluster.waitForPipeline(pipeline.id)
            let build = try Self.job(failed, "build")
            #expect(build.state == "failed" && build.attempt == 1)
            let retry = try await Self.gantry(cluster, ["retry", build.id])
            #expect(retry.status == .exited(0), "\(retry.all)")
            try await cluster.waitForJob(build.id, "attempt 2 ended") { $0.attempt == 2 && $0.isTerminal }
            #expect(try await Self.logText(cluster, build) == "attempt 2\n")
            #expect(try await cluster.attempts(build.id).map(\.attempt) == [1, 2])
            #expect(retry.output.contains("attempt 2"), "the CLI announced: \(retry.output)")
            #expect(!retry.output.contains("attempt 3"), "the CLI announced: \(retry.output)")
        }
    }
}
