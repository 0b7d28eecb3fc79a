import Foundation
import GantryProtocol
import Subprocess
import Testing

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// `gantry pipeline upload` end to end with the real binaries: a step adds steps to its
/// running pipeline with its job token and they run, ordered as Buildkite orders them; an
/// invalid file adds nothing and fails the step with file:line:column; a finished
/// attempt's token and a person's token are refused; and `gantry run` without a file
/// starts the bootstrap pipeline that uploads the repository's `.gantry/pipeline.yml`.
@Suite("Pipeline upload", .serialized, .timeLimit(.minutes(4)))
struct PipelineUploadTests {
    /// The built `gantry` first on the agent's `PATH`, as an operator installs it next to
    /// the agent, so steps call it by name.
    static func agentEnvironment(_ cluster: TestCluster, first directory: String? = nil) -> [String: String] {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return ["PATH": ((directory.map { [$0] } ?? []) + [cluster.binaries, path]).joined(separator: ":")]
    }

    static func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// Two jobs of one step upload keyless steps at the same moment: each gets keys of its
    /// own (the uploading job's id is in them), so neither upload is refused as a clash.
    @Test func parallelUploadsOfKeylessStepsDoNotCollide() async throws {
        try await TestCluster.with("upload-parallel") { cluster in
            try await cluster.startAgent(slot: "1", environment: Self.agentEnvironment(cluster))
            try await cluster.startAgent(slot: "2", environment: Self.agentEnvironment(cluster))
            let uploaded = cluster.root + "/keyless.yml"
            let barrier = cluster.root + "/barrier"
            try Self.write("steps:\n  - command: \"echo keyless from $GANTRY_PIPELINE_ID\"\n", to: uploaded)
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: up
                    parallelism: 2
                    commands:
                      - "touch \(barrier).$GANTRY_PARALLEL_JOB"
                      - "i=0; while [ ! -f \(barrier).0 ] || [ ! -f \(barrier).1 ]; do [ $i -lt 300 ] || exit 9; sleep 0.1; i=$((i+1)); done"
                      - "gantry pipeline upload \(uploaded)"
                """)
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "succeeded", "\(done.jobs.map { ($0.key, $0.state, $0.reason ?? "") })")
            let keyless = done.jobs.filter { $0.key.hasPrefix("upload-") }.map(\.key)
            #expect(keyless.count == 2 && Set(keyless).count == 2, "\(keyless)")
        }
    }

    @Test func uploadedStepsRunAndAWaitAfterTheUploaderCoversThem() async throws {
        try await TestCluster.with("upload-run") { cluster in
            try await cluster.startAgent(slot: "1", environment: Self.agentEnvironment(cluster))
            try await cluster.startAgent(slot: "2", environment: Self.agentEnvironment(cluster))
            let go = cluster.root + "/go"
            let uploaded = cluster.root + "/uploaded.yml"
            try Self.write(
                """
                steps:
                  - key: test
                    depends_on: build
                    command: "echo testing after build"
                  - key: slow
                    commands:
                      - "i=0; while [ ! -f \(go) ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"
                      - "test -f \(go)"
                """, to: uploaded)
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: build
                    command: "echo built"
                  - key: up
                    depends_on: build
                    command: "gantry pipeline upload \(uploaded)"
                  - wait
                  - key: after
                    command: "echo after everything"
                """)
            #expect(pipeline.jobs.map(\.key) == ["build", "up", "after"])
            let up = try #require(pipeline.jobs.first { $0.key == "up" })
            let after = try #require(pipeline.jobs.first { $0.key == "after" })
            _ = try await cluster.waitForJob(up.id, "up to succeed") { $0.state == "succeeded" }
            // The uploader has ended, the uploaded `slow` still runs: `after` waits for it.
            let running = try await cluster.pipeline(pipeline.id)
            #expect(running.jobs.map(\.key) == ["build", "up", "after", "test", "slow"])
            let slow = try #require(running.jobs.first { $0.key == "slow" })
            _ = try await cluster.waitForJob(slow.id, "slow to start") { $0.state == "running" }
            #expect(try await cluster.job(after.id).state == "waiting")
            #expect(try await cluster.job(after.id).dependsOn.contains("slow"))
            _ = FileManager.default.createFile(atPath: go, contents: Data())

            let done = try await cluster.waitForPipeline(pipeline.id)
            let logUp = String(decoding: try await cluster.log(up.id), as: UTF8.self)
            #expect(done.state == "succeeded", "\(done.jobs.map { ($0.key, $0.state, $0.reason ?? "") }) \(logUp)")
            let byKey = Dictionary(done.jobs.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
            let test = try #require(byKey["test"]), finishedSlow = try #require(byKey["slow"]), ranAfter = try #require(byKey["after"])
            #expect(try #require(ranAfter.startedAt) >= (try #require(finishedSlow.finishedAt)))
            #expect(String(decoding: try await cluster.log(test.id), as: UTF8.self).contains("testing after build"))
            // The CLI printed the jobs it added.
            #expect(logUp.contains(test.id) && logUp.contains(finishedSlow.id), "\(logUp)")
            // Audited as the step's job, with the number of steps.
            let (_, audit) = try await cluster.request(.GET, "/v1/audit?limit=1000")
            let records = try API.decoder.decode(API.AuditPage.self, from: audit).records
            let record = try #require(records.first { $0.action == "pipeline.upload" })
            #expect(record.actor == "job:\(up.id)" && record.outcome == "succeeded" && record.detail["steps"] == "2")
        }
    }

    /// An uploader that fails after its upload and is retried uploads the same file again:
    /// nothing is added the second time (no keyed clash failing the retry, no keyless step
    /// running twice) and the CLI says which attempt had uploaded it. A different file from
    /// the retry is added as usual.
    @Test func aRetriedUploaderDoesNotAddItsStepsTwice() async throws {
        try await TestCluster.with("upload-retry") { cluster in
            try await cluster.startAgent(slot: "1", environment: Self.agentEnvironment(cluster))
            let same = cluster.root + "/same.yml"
            let extra = cluster.root + "/extra.yml"
            try Self.write("steps:\n  - key: keyed\n    command: \"echo keyed\"\n  - command: \"echo keyless\"\n", to: same)
            try Self.write("steps:\n  - key: only-on-retry\n    command: \"echo second attempt\"\n", to: extra)
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: up
                    retry:
                      automatic:
                        - exit_status: 75
                          limit: 1
                    commands:
                      - "gantry pipeline upload \(same)"
                      - 'if [ "$GANTRY_ATTEMPT" = 1 ]; then exit 75; fi'
                      - "gantry pipeline upload \(extra)"
                """)
            let done = try await cluster.waitForPipeline(pipeline.id)
            let up = try #require(done.jobs.first { $0.key == "up" })
            let log = String(decoding: try await cluster.log(up.id), as: UTF8.self)
            #expect(done.state == "succeeded", "\(done.jobs.map { ($0.key, $0.state, $0.reason ?? "") }) \(log)")
            #expect(up.attempt == 2, "\(up)")
            let keys = done.jobs.map(\.key)
            #expect(keys.filter { $0 == "keyed" }.count == 1, "\(keys)")
            #expect(keys.filter { $0.hasPrefix("upload-") }.count == 1, "one keyless step, not two: \(keys)")
            #expect(keys.contains("only-on-retry"), "\(keys)")
            #expect(log.contains("attempt 1 of this step already uploaded it; nothing added (its 2 job(s) stand)"), "\(log)")
            // Each uploaded step ran once.
            let keyed = try #require(done.jobs.first { $0.key == "keyed" })
            #expect(keyed.state == "succeeded" && keyed.attempt == 1)
        }
    }

    @Test func anInvalidUploadAddsNothingAndFailsTheStepWithItsPlace() async throws {
        try await TestCluster.with("upload-invalid") { cluster in
            try await cluster.startAgent(slot: "1", environment: Self.agentEnvironment(cluster))
            let bad = cluster.root + "/bad.yml"
            try Self.write(
                """
                steps:
                  - key: fine
                    command: "echo fine"
                  - key: broken
                    command: "echo broken"
                    depends_on: nowhere
                """, to: bad)
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: up
                    command: "gantry pipeline upload \(bad)"
                  - key: clash
                    command: "printf 'steps:\\\\n  - {key: up, command: x}\\\\n' | gantry pipeline upload -"
                """)
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "failed")
            #expect(done.jobs.map(\.key) == ["up", "clash"], "nothing was added")
            #expect(done.jobs.allSatisfy { $0.state == "failed" })
            let upLog = String(decoding: try await cluster.log(done.jobs[0].id), as: UTF8.self)
            #expect(upLog.contains("\(bad):6:17: step `broken` depends on `nowhere`"), "\(upLog)")
            let clashLog = String(decoding: try await cluster.log(done.jobs[1].id), as: UTF8.self)
            #expect(clashLog.contains("stdin:2:") && clashLog.contains("already a step of this pipeline"), "\(clashLog)")
            let (_, audit) = try await cluster.request(.GET, "/v1/audit?limit=1000")
            let records = try API.decoder.decode(API.AuditPage.self, from: audit).records
            #expect(records.filter { $0.action == "pipeline.upload" }.map(\.outcome) == ["refused", "refused"])
        }
    }

    @Test func aFinishedAttemptsTokenAndAPersonsTokenAreRefused() async throws {
        try await TestCluster.with("upload-tokens") { cluster in
            try await cluster.startAgent(slot: "1", environment: Self.agentEnvironment(cluster))
            let tokenFile = cluster.root + "/job.token"
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: a
                    command: "printf %s \\"$GANTRY_JOB_TOKEN\\" > \(tokenFile)"
                """)
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "succeeded")
            let token = try String(contentsOfFile: tokenFile, encoding: .utf8)
            let path = APIRoute.uploadPipelineSteps.path(["id": pipeline.id])
            let yaml = Data("steps:\n  - {key: late, command: x}\n".utf8)
            let (finished, text) = try await cluster.request(.POST, path, body: yaml, token: token)
            #expect(finished == 401 && String(decoding: text, as: UTF8.self).contains("no longer valid"))

            // A person, even an admin, adds steps by submitting a pipeline.
            let other = try await cluster.submit("steps:\n  - {key: b, command: 'sleep 30'}\n")
            let (person, refusal) = try await cluster.request(.POST, APIRoute.uploadPipelineSteps.path(["id": other.id]), body: yaml)
            #expect(person == 403 && String(decoding: refusal, as: UTF8.self).contains("only a running step"))
            #expect(try await cluster.pipeline(other.id).jobs.count == 1)
            let (_, cancelled) = try await cluster.request(.POST, "/v1/pipelines/\(other.id)/cancel")
            #expect(!cancelled.isEmpty)
        }
    }

    /// Uploaded steps act for the pipeline's submitter: a developer's build cannot add a
    /// deploying step, an admin's can.
    @Test func uploadedDeployStepsNeedTheSubmittersDeployPermission() async throws {
        try await TestCluster.with("upload-deploy", coordinatorArguments: ["--allow-untrusted-environment-steps"]) { cluster in
            try await cluster.startAgent(slot: "1", environment: Self.agentEnvironment(cluster))
            let deploy = cluster.root + "/deploy.yml"
            try Self.write("steps:\n  - key: ship\n    environment: staging\n    command: \"echo shipped\"\n", to: deploy)
            let yaml = "steps:\n  - key: up\n    command: \"gantry pipeline upload \(deploy)\"\n"
            let developer = try await AuthorizationTests.hostToken(cluster, identity: "dev", role: "developer")
            let (status, body) = try await cluster.request(
                .POST, "/v1/pipelines", body: try API.encoder.encode(API.SubmitPipeline(yaml: yaml)), token: developer)
            #expect(status == 201, "\(String(decoding: body, as: UTF8.self))")
            let refused = try await cluster.waitForPipeline(try API.decoder.decode(API.Pipeline.self, from: body).id)
            #expect(refused.state == "failed" && refused.jobs.map(\.key) == ["up"])
            let log = String(decoding: try await cluster.log(refused.jobs[0].id), as: UTF8.self)
            #expect(log.contains("act for the identity that submitted") && log.contains("dev") && log.contains("staging"), "\(log)")

            let allowed = try await cluster.waitForPipeline(try await cluster.submit(yaml).id)
            #expect(allowed.state == "succeeded" && allowed.jobs.map(\.key) == ["up", "ship"], "\(allowed.jobs.map { ($0.key, $0.state) })")
        }
    }

    /// `gantry run --repository --commit` without a file submits the bootstrap pipeline:
    /// the agent checks the commit out from a real repository, and the bootstrap's one step
    /// uploads the `.gantry/pipeline.yml` it finds there; `gantry run` follows the jobs it adds.
    @Test func runWithoutAFileBootstrapsFromTheRepositorysPipeline() async throws {
        try await TestCluster.with("upload-bootstrap") { cluster in
            let repositoryPipeline = """
                steps:
                  - key: hello
                    command: "echo hello from the repository"
                  - wait
                  - key: bye
                    command: "echo bye from the repository"
                """
            let repository = cluster.root + "/repository"
            try Self.write(repositoryPipeline, to: repository + "/.gantry/pipeline.yml")
            for arguments in [
                ["init", "-q", "-b", "main"], ["add", ".gantry/pipeline.yml"],
                ["-c", "user.name=Gantry Test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "pipeline"],
            ] {
                let git = try await Subprocess.run(
                    .name("git"), arguments: Arguments(["-C", repository] + arguments), output: .discarded,
                    error: .string(limit: 65536))
                #expect(git.terminationStatus.isSuccess, "git \(arguments): \(git.standardError)")
            }
            let head = try await Subprocess.run(
                .name("git"), arguments: ["-C", repository, "rev-parse", "HEAD"], output: .string(limit: 1024), error: .discarded)
            let commit = head.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            try await cluster.startAgent(
                slot: "1", extraArguments: ["--git-allow-file-urls"], environment: Self.agentEnvironment(cluster))
            let result = try await Subprocess.run(
                .path(FilePath(cluster.binaries + "/gantry")),
                arguments: [
                    "run", "--server", cluster.serverURL, "--token", cluster.adminToken, "--repository",
                    "file://\(repository)", "--commit", commit, "--branch", "main",
                ],
                output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
            let output = result.standardOutput + result.standardError
            #expect(result.terminationStatus.isSuccess, "\(output)")
            #expect(output.contains("hello from the repository") && output.contains("bye from the repository"), "\(output)")
            #expect(output.contains("✓ upload .gantry/pipeline.yml succeeded") && output.contains("✓ bye succeeded"), "\(output)")
            let (_, listed) = try await cluster.request(.GET, "/v1/jobs?limit=10")
            let jobs = try API.decoder.decode([API.Job].self, from: listed)
            #expect(Set(jobs.map(\.key)) == ["pipeline-upload", "hello", "bye"])
            let bye = try #require(jobs.first { $0.key == "bye" })
            #expect(bye.dependsOn == ["hello"])
            let pipeline = try await cluster.pipeline(bye.pipelineId)
            #expect(pipeline.repository == "file://\(repository)" && pipeline.commit == commit && pipeline.branch == "main")
        }
    }
}
