import Foundation
import GantryProtocol
import Subprocess
import Testing

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Issue 13 end to end with the real binaries: a repository holds its own pipeline; the
/// bootstrap (`gantry run --repository --commit`, no file) uploads it from the agent's
/// checkout; it builds an artifact once, with a cache, and a later step tests the
/// downloaded bytes; a rebuild restores the cache; a second pipeline promotes exactly those
/// bytes to an environment (`--from-pipeline`); and `gantry artifact show` answers where
/// they came from and where they were deployed.
@Suite("Build once, promote the same bytes", .serialized, .timeLimit(.minutes(4)))
struct BuildOncePromoteTests {
    /// The repository's pipeline; `BARRIER` is replaced by a path the test owns.
    static let pipeline = """
        steps:
          - key: build
            agents: {role: build}
            commands:
              - "if [ -f deps/fetched ]; then echo deps restored from cache; else mkdir -p deps && echo once > deps/fetched && echo deps fetched; fi"
              - mkdir -p dist && tar -czf dist/app.tar.gz app.sh
              - sha256sum dist/app.tar.gz
            artifacts: ["dist/*.tar.gz"]
            cache: {key: "deps-{{ checksum \\"deps.lock\\" }}", paths: [deps]}
          - key: test
            depends_on: build
            agents: {role: test}
            checkout: false
            download: [{step: build, path: "dist/*"}]
            commands:
              - tar -xzf dist/app.tar.gz -O app.sh | grep 'hello from app'
          - key: lint
            parallelism: 3
            commands:
              - "echo checked out $(git rev-parse HEAD)"
              - "touch BARRIER.$GANTRY_PARALLEL_JOB-$GANTRY_PIPELINE_ID"
              - "i=0; while [ $(ls BARRIER.*-$GANTRY_PIPELINE_ID | wc -l) -lt 3 ]; do [ $i -lt 600 ] || exit 9; sleep 0.1; i=$((i+1)); done"
        """

    static let deploy = """
        steps:
          - key: deploy
            environment: staging
            checkout: false
            download: [{step: build, path: "dist/*"}]
            commands:
              - sha256sum dist/app.tar.gz
              - tar -xzf dist/app.tar.gz -O app.sh
        """

    @Test func theBytesTestedAreTheBytesDeployed() async throws {
        try await TestCluster.with("build-once", coordinatorArguments: ["--allow-untrusted-environment-steps"]) { cluster in
            let work = cluster.root + "/source"
            try FileManager.default.createDirectory(atPath: work + "/.gantry", withIntermediateDirectories: true)
            try Data("echo hello from app\n".utf8).write(to: URL(fileURLWithPath: work + "/app.sh"))
            try Data("lock v1\n".utf8).write(to: URL(fileURLWithPath: work + "/deps.lock"))
            let barrier = cluster.root + "/barrier"
            try Data(Self.pipeline.replacingOccurrences(of: "BARRIER", with: barrier).utf8).write(
                to: URL(fileURLWithPath: work + "/.gantry/pipeline.yml"))
            try await CheckoutTests.sh("git -c init.defaultBranch=main init -q . && git add -A && git commit -q -m app", in: work)
            let commit = try await CheckoutTests.sh("git rev-parse HEAD", in: work)
            let bare = cluster.root + "/source.git"
            try await CheckoutTests.sh("git clone -q --bare '\(work)' '\(bare)'", in: cluster.root)
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
            // Three slots of one host, sharing its git mirror: one builds, two test.
            for (slot, role) in [("1", "build"), ("2", "test"), ("3", "test")] {
                try await cluster.startAgent(
                    slot: slot, labels: "os=linux,role=\(role)", extraArguments: ["--git-allow-file-urls"],
                    environment: ["PATH": cluster.binaries + ":" + path])
            }
            let cli = cluster.binaries + "/gantry"
            func gantry(_ arguments: [String]) async throws -> (Bool, String) {
                let result = try await Subprocess.run(
                    .path(FilePath(cli)), arguments: Arguments(arguments + ["--server", cluster.serverURL, "--token", cluster.adminToken]),
                    output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
                return (result.terminationStatus.isSuccess, result.standardOutput + result.standardError)
            }

            // 1. The bootstrap: checkout, upload of the repository's pipeline, build, test.
            let (built, buildOutput) = try await gantry(
                ["run", "--repository", "file://\(bare)", "--commit", commit, "--branch", "main"])
            #expect(built, "\(buildOutput)")
            let (_, listed) = try await cluster.request(.GET, "/v1/jobs?limit=20")
            let jobs = try API.decoder.decode([API.Job].self, from: listed)
            let build = try #require(jobs.first { $0.key == "build" })
            let buildLog = String(decoding: try await cluster.log(build.id), as: UTF8.self)
            #expect(buildLog.contains("deps fetched"), "\(buildLog)")
            let source = build.pipelineId
            // The test ran on another agent than the build, from the downloaded bytes.
            let test = try #require(jobs.first { $0.key == "test" && $0.pipelineId == source })
            #expect(test.state == "succeeded" && test.agentId != nil && test.agentId != build.agentId, "\(jobs)")
            // Three checkouts at once (each waited for the others) on three agents, from one
            // mirror for the host.
            let lint = jobs.filter { $0.key == "lint" && $0.pipelineId == source }
            #expect(lint.count == 3 && Set(lint.compactMap(\.agentId)).count == 3, "\(lint.map { ($0.state, $0.agentId ?? "") })")
            for job in lint {
                let log = String(decoding: try await cluster.log(job.id), as: UTF8.self)
                #expect(job.state == "succeeded" && log.contains("checked out \(commit)"), "\(log)")
            }
            let mirrors = try FileManager.default.contentsOfDirectory(atPath: cluster.agentState + "/git-mirrors")
            #expect(mirrors.filter { $0.hasSuffix(".git") }.count == 1, "\(mirrors)")

            // The artifact: stored once by digest, with its provenance.
            let (_, artifactsData) = try await cluster.request(.GET, APIRoute.listArtifacts.path(["id": source]))
            let artifacts = try API.decoder.decode(API.ArtifactList.self, from: artifactsData).artifacts
            let artifact = try #require(artifacts.first { $0.name == "dist/app.tar.gz" }, "\(artifacts)")
            #expect(buildLog.contains("\(artifact.sha256)  dist/app.tar.gz"), "the digest is sha256 of the bytes built: \(buildLog)")
            #expect(artifact.commit == commit && artifact.jobId == build.id && artifact.stepKey == "build")

            // 2. A rebuild of the same commit restores the cache the first build saved.
            let (rebuilt, rebuildOutput) = try await gantry(["rebuild", source, "--follow"])
            #expect(rebuilt, "\(rebuildOutput)")
            let (_, relisted) = try await cluster.request(.GET, "/v1/jobs?limit=40")
            let rebuiltBuild = try #require(
                try API.decoder.decode([API.Job].self, from: relisted).first { $0.key == "build" && $0.pipelineId != source })
            let rebuildLog = String(decoding: try await cluster.log(rebuiltBuild.id), as: UTF8.self)
            #expect(rebuildLog.contains("deps restored from cache"), "\(rebuildLog)")

            // 3. Promotion: a deploy pipeline downloads exactly the first build's bytes.
            let deployFile = cluster.root + "/deploy.yml"
            try Data(Self.deploy.utf8).write(to: URL(fileURLWithPath: deployFile))
            let (deployed, deployOutput) = try await gantry(
                ["run", deployFile, "--from-pipeline", source, "--repository", "file://\(bare)", "--commit", commit, "--branch", "main"])
            #expect(deployed, "\(deployOutput)")
            #expect(deployOutput.contains("\(artifact.sha256)  dist/app.tar.gz") && deployOutput.contains("hello from app"), "\(deployOutput)")

            // 4. Where did these bytes come from, and where have they been deployed?
            let (_, detailData) = try await cluster.request(.GET, APIRoute.getArtifact.path(["digest": artifact.sha256]))
            let detail = try API.decoder.decode(API.ArtifactDetail.self, from: detailData)
            #expect(detail.provenance.contains { $0.jobId == build.id && $0.commit == commit })
            #expect(detail.deployments.contains { $0.environment == "staging" && $0.state == "succeeded" }, "\(detail)")
            let (shown, showOutput) = try await gantry(["artifact", "show", artifact.sha256])
            #expect(shown && showOutput.contains("staging") && showOutput.contains(build.id), "\(showOutput)")
        }
    }

    /// A path that leaves the work dir is refused by name: `../` at submission (with its
    /// place in the file), a link pointing outside when the agent would upload it.
    @Test func anArtifactPathThatLeavesTheWorkDirIsRefusedByName() async throws {
        try await TestCluster.with("artifact-escape") { cluster in
            try await cluster.startAgent(slot: "1")
            let (status, body) = try await cluster.request(
                .POST, "/v1/pipelines",
                body: try API.encoder.encode(
                    API.SubmitPipeline(yaml: "steps:\n  - key: a\n    command: 'true'\n    artifacts: [\"../outside\"]\n", file: "p.yml")))
            let refusal = String(decoding: body, as: UTF8.self)
            #expect(
                status == 422 && refusal.contains(#""line":4"#) && refusal.contains("outside")
                    && refusal.contains("must stay inside the job's work dir"), "\(status) \(refusal)")

            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: evil
                    commands:
                      - mkdir -p dist && ln -s /etc/hostname dist/secret.txt && echo built
                    artifacts: ["dist/secret.txt"]
                """)
            let done = try await cluster.waitForPipeline(pipeline.id)
            let job = try #require(done.jobs.first)
            let log = String(decoding: try await cluster.log(job.id), as: UTF8.self)
            #expect(done.state == "failed" && job.failure == "artifact_upload_failed", "\(job) \(log)")
            #expect(log.contains("dist/secret.txt"), "the refusal names the path: \(log)")
            let (_, listed) = try await cluster.request(.GET, APIRoute.listArtifacts.path(["id": pipeline.id]))
            #expect(try API.decoder.decode(API.ArtifactList.self, from: listed).artifacts.isEmpty)
        }
    }
}
