import Crypto
import Foundation
import GantryProtocol
import NIOHTTP1
import Subprocess
import SystemPackage
import Testing

/// Pushes start pipelines, with the real binaries: a project made with the CLI, a real
/// git repository holding its pipeline, deliveries signed as GitHub and GitLab send them,
/// and every way a delivery is refused or ignored starting nothing.
@Suite("Webhooks", .timeLimit(.minutes(5)))
struct WebhookTests {
    static func git(_ repository: String, _ arguments: [String]) async throws -> String {
        let result = try await Subprocess.run(
            .name("git"),
            arguments: Arguments(
                ["-C", repository, "-c", "user.name=Gantry Test", "-c", "user.email=test@example.invalid"] + arguments),
            output: .string(limit: 65536), error: .string(limit: 65536))
        guard result.terminationStatus.isSuccess else { throw TimedOut(description: "git \(arguments): \(result.standardError)") }
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A repository in the cluster's directory whose one commit on `main` holds
    /// `.gantry/pipeline.yml`; its `file://` URL and the commit.
    static func repository(_ cluster: TestCluster, pipeline: String) async throws -> (url: String, commit: String) {
        let repository = cluster.root + "/repository"
        try PipelineUploadTests.write(pipeline, to: repository + "/.gantry/pipeline.yml")
        _ = try await git(repository, ["init", "-q", "-b", "main"])
        _ = try await git(repository, ["add", ".gantry/pipeline.yml"])
        _ = try await git(repository, ["commit", "-q", "-m", "pipeline"])
        return ("file://\(repository)", try await git(repository, ["rev-parse", "HEAD"]))
    }

    static func gantry(_ cluster: TestCluster, _ arguments: [String]) async throws -> (Bool, String) {
        let result = try await Subprocess.run(
            .path(FilePath(cluster.binaries + "/gantry")),
            arguments: Arguments(arguments + ["--server", cluster.serverURL, "--token", cluster.adminToken]),
            output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        return (result.terminationStatus.isSuccess, result.standardOutput + result.standardError)
    }

    static func push(ref: String, commit: String, repository: String) -> Data {
        Data(
            """
            {"ref": "\(ref)", "before": "\(String(repeating: "0", count: 40))", "after": "\(commit)",
             "repository": {"clone_url": "\(repository)", "html_url": "\(repository)"},
             "head_commit": {"id": "\(commit)", "message": "a change"}}
            """.utf8)
    }

    static func signature(_ body: Data, _ secret: String) -> String {
        "sha256=" + HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
            .map { String(format: "%02x", $0) }.joined()
    }

    static func jobCount(_ cluster: TestCluster) async throws -> Int {
        let (_, data) = try await cluster.request(.GET, "/v1/jobs?limit=1000")
        return try API.decoder.decode([API.Job].self, from: data).count
    }

    @Test func aSignedPushStartsThePipelineOnceAndNothingElseStartsAnything() async throws {
        try await TestCluster.with("webhooks") { cluster in
            let (url, commit) = try await Self.repository(
                cluster, pipeline: "steps:\n  - key: hello\n    command: \"echo hello from $GANTRY_BRANCH at $GANTRY_COMMIT\"\n")
            try await cluster.startAgent(
                slot: "1", extraArguments: ["--git-allow-file-urls"], environment: PipelineUploadTests.agentEnvironment(cluster))

            let (created, output) = try await Self.gantry(
                cluster, ["project", "create", "app", "--repository", url, "--branch", "main", "--branch", "release/*", "--json"])
            #expect(created, "\(output)")
            let project = try API.decoder.decode(API.Project.self, from: Data(output.utf8))
            let secret = try #require(project.webhookSecret)
            #expect(project.webhookPath == "/v1/hooks/app" && project.branches == ["main", "release/*"])
            let (shown, showOutput) = try await Self.gantry(cluster, ["project", "show", "app"])
            #expect(shown && showOutput.contains("webhook URL:   \(cluster.serverURL)/v1/hooks/app"), "\(showOutput)")
            #expect(!showOutput.contains(secret), "the secret is shown at creation only")

            // A push to main, signed as GitHub signs it: the pipeline from the repository runs.
            let body = Self.push(ref: "refs/heads/main", commit: commit, repository: url)
            let github = [
                ("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "delivery-1"), ("X-Hub-Signature-256", Self.signature(body, secret)),
            ]
            let (status, data) = try await cluster.request(.POST, "/v1/hooks/app", body: body, token: "", headers: github)
            #expect(status == 201, "\(String(decoding: data, as: UTF8.self))")
            let result = try API.decoder.decode(API.WebhookResult.self, from: data)
            let pipelineID = try #require(result.pipelineId)
            #expect(result.started && !result.duplicate)
            let done = try await cluster.waitForPipeline(pipelineID, timeout: .seconds(120))
            #expect(done.state == "succeeded", "\(done)")
            #expect(done.repository == url && done.commit == commit && done.branch == "main")
            let hello = try #require(done.jobs.first { $0.key == "hello" })
            let log = String(decoding: try await cluster.log(hello.id), as: UTF8.self)
            #expect(log.contains("hello from main at \(commit)"), "\(log)")
            let jobs = try await Self.jobCount(cluster)

            // The same delivery again (a replay, or the sender's retry): nothing new.
            let (replayStatus, replayData) = try await cluster.request(.POST, "/v1/hooks/app", body: body, token: "", headers: github)
            let replay = try API.decoder.decode(API.WebhookResult.self, from: replayData)
            #expect(replayStatus == 200 && replay.duplicate && !replay.started && replay.pipelineId == pipelineID)
            // The delivery id is not signed: the same signed body under another id, or with
            // its signature in Gitea's header, is the same push.
            let hmac = String(Self.signature(body, secret).dropFirst("sha256=".count))
            for headers in [
                [("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "another-id"), ("X-Hub-Signature-256", "sha256=" + hmac)],
                [("X-Gitea-Event", "push"), ("X-Gitea-Delivery", "gitea-id"), ("X-Gitea-Signature", hmac)],
            ] {
                let (status, data) = try await cluster.request(.POST, "/v1/hooks/app", body: body, token: "", headers: headers)
                let again = try API.decoder.decode(API.WebhookResult.self, from: data)
                #expect(status == 200 && again.duplicate && again.pipelineId == pipelineID, "\(headers): \(again)")
            }

            // Refused or ignored, each with its reason, and nothing started.
            let other = Self.push(ref: "refs/heads/feature/x", commit: commit, repository: url)
            let foreign = Self.push(ref: "refs/heads/main", commit: commit, repository: "https://git.example.com/someone/else.git")
            let cases: [(String, Data, [(String, String)], Int, String)] = [
                ("no signature", body, [("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d-2")], 401, "signature_missing"),
                ("a wrong signature", body, [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", Self.signature(body, "not the secret"))], 401, "bad_signature"),
                ("a body other than the signed one", other, github, 401, "bad_signature"),
                ("a wrong GitLab token", body, [("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "guess")], 401, "bad_signature"),
                ("another repository", foreign, [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", Self.signature(foreign, secret))], 422, "repository_mismatch"),
                ("a malformed payload", Data("{\"ref\": 1}".utf8), [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", Self.signature(Data("{\"ref\": 1}".utf8), secret))], 400, "bad_payload"),
            ]
            for (what, payload, headers, expected, code) in cases {
                let (status, data) = try await cluster.request(.POST, "/v1/hooks/app", body: payload, token: "", headers: headers)
                let text = String(decoding: data, as: UTF8.self)
                #expect(status == expected && text.contains("\"\(code)\""), "\(what): \(status) \(text)")
            }
            let (unknown, _) = try await cluster.request(.POST, "/v1/hooks/nobody", body: body, token: "", headers: github)
            #expect(unknown == 404)
            let ignored: [(String, Data, [(String, String)])] = [
                ("a branch no pattern matches", other, [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", Self.signature(other, secret))]),
                ("a ping", body, [("X-GitHub-Event", "ping"), ("X-Hub-Signature-256", Self.signature(body, secret))]),
            ]
            for (what, payload, headers) in ignored {
                let (status, data) = try await cluster.request(.POST, "/v1/hooks/app", body: payload, token: "", headers: headers)
                let answer = try API.decoder.decode(API.WebhookResult.self, from: data)
                #expect(status == 200 && !answer.started && answer.reason != nil, "\(what): \(status) \(answer)")
            }
            #expect(try await Self.jobCount(cluster) == jobs, "a refused or ignored delivery started a job")

            // GitLab sends the secret as its token: a push to release/1 starts a second build.
            let release = Self.push(ref: "refs/heads/release/1", commit: commit, repository: url)
            let (gitlab, gitlabData) = try await cluster.request(
                .POST, "/v1/hooks/app", body: release, token: "",
                headers: [("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", secret), ("X-Gitlab-Event-UUID", "gl-1")])
            let second = try API.decoder.decode(API.WebhookResult.self, from: gitlabData)
            #expect(gitlab == 201 && second.started, "\(String(decoding: gitlabData, as: UTF8.self))")
            let released = try await cluster.waitForPipeline(try #require(second.pipelineId), timeout: .seconds(120))
            #expect(released.state == "succeeded" && released.branch == "release/1", "\(released)")

            // Every delivery is in the audit log, by the project's webhook.
            let (_, auditData) = try await cluster.request(.GET, "/v1/audit?actor=webhook:app&limit=100")
            let records = try API.decoder.decode(API.AuditPage.self, from: auditData).records
            #expect(records.filter { $0.action == "pipeline.trigger" && $0.outcome == "succeeded" }.count == 2, "\(records)")
            #expect(records.filter { $0.outcome == "denied" }.count == 4, "\(records)")

            // Deleted, the project's hook starts nothing.
            let (deleted, deleteOutput) = try await Self.gantry(cluster, ["project", "delete", "app"])
            #expect(deleted, "\(deleteOutput)")
            let (gone, _) = try await cluster.request(.POST, "/v1/hooks/app", body: body, token: "", headers: github)
            #expect(gone == 404)
        }
    }

    /// With `--cancel-superseded`, a push to a branch cancels the build its webhook started
    /// for that branch before, while it still runs; another branch's build is left alone.
    @Test func aNewerPushCancelsTheBranchsRunningBuild() async throws {
        try await TestCluster.with("webhooks-supersede") { cluster in
            let go = cluster.root + "/go"
            let (url, commit) = try await Self.repository(cluster, pipeline:
                """
                steps:
                  - key: hold
                    command: "i=0; while [ ! -f \(go) ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"
                """)
            for slot in ["1", "2"] {
                try await cluster.startAgent(
                    slot: slot, extraArguments: ["--git-allow-file-urls"], environment: PipelineUploadTests.agentEnvironment(cluster))
            }
            let (created, output) = try await Self.gantry(
                cluster, ["project", "create", "app", "--repository", url, "--cancel-superseded", "--json"])
            #expect(created, "\(output)")
            let secret = try #require(try API.decoder.decode(API.Project.self, from: Data(output.utf8)).webhookSecret)
            func deliver(_ ref: String, _ id: String) async throws -> API.WebhookResult {
                // Each push's body differs (its message), as two real pushes' do.
                let body = Data(
                    String(decoding: Self.push(ref: ref, commit: commit, repository: url), as: UTF8.self)
                        .replacingOccurrences(of: "a change", with: "change \(id)").utf8)
                let (status, data) = try await cluster.request(
                    .POST, "/v1/hooks/app", body: body, token: "",
                    headers: [("X-GitHub-Event", "push"), ("X-GitHub-Delivery", id), ("X-Hub-Signature-256", Self.signature(body, secret))])
                #expect(status == 201, "\(String(decoding: data, as: UTF8.self))")
                return try API.decoder.decode(API.WebhookResult.self, from: data)
            }
            func holding(_ pipeline: String) async throws {
                try await waitUntil("pipeline \(pipeline)'s hold step to run", timeout: .seconds(60)) {
                    try await cluster.pipeline(pipeline).jobs.contains { $0.key == "hold" && $0.state == "running" }
                }
            }
            let first = try #require(try await deliver("refs/heads/main", "a").pipelineId)
            let other = try #require(try await deliver("refs/heads/other", "b").pipelineId)
            try await holding(first)
            try await holding(other)
            let newer = try await deliver("refs/heads/main", "c")
            #expect(newer.cancelled == [first], "\(newer)")
            let cancelled = try await cluster.waitForPipeline(first, timeout: .seconds(60))
            #expect(cancelled.state == "cancelled", "\(cancelled)")
            let reason = cancelled.jobs.first { $0.key == "hold" }?.reason ?? ""
            #expect(reason.contains("superseded by pipeline \(try #require(newer.pipelineId))"), "\(reason)")
            _ = FileManager.default.createFile(atPath: go, contents: nil)
            #expect(try await cluster.waitForPipeline(try #require(newer.pipelineId), timeout: .seconds(120)).state == "succeeded")
            #expect(try await cluster.waitForPipeline(other, timeout: .seconds(60)).state == "succeeded")
        }
    }

    /// A project's pipelines are submitted as its run-as identity, as that identity is at
    /// each push: disabled, it starts nothing. Without one, as `project:NAME`, which holds
    /// no role. An unknown run-as identity is refused at creation.
    @Test func pipelinesRunAsTheProjectsIdentityAsItIsNow() async throws {
        try await TestCluster.with("webhooks-run-as", coordinatorArguments: ["--allow-untrusted-environment-steps"]) { cluster in
            let (url, commit) = try await Self.repository(
                cluster, pipeline: "steps:\n  - key: hello\n    command: \"true\"\n    environment: staging\n")
            try await cluster.startAgent(
                slot: "1", extraArguments: ["--git-allow-file-urls"], environment: PipelineUploadTests.agentEnvironment(cluster))
            let (unknown, unknownOutput) = try await Self.gantry(
                cluster, ["project", "create", "app", "--repository", url, "--run-as", "nobody"])
            #expect(!unknown && unknownOutput.contains("no enabled identity nobody"), "\(unknownOutput)")
            let (identity, identityOutput) = try await Self.gantry(
                cluster, ["identity", "create", "ci-app", "--role", "deployer:staging", "--kind", "service"])
            #expect(identity, "\(identityOutput)")
            let (created, output) = try await Self.gantry(
                cluster, ["project", "create", "app", "--repository", url, "--run-as", "ci-app", "--json"])
            #expect(created, "\(output)")
            let project = try API.decoder.decode(API.Project.self, from: Data(output.utf8))
            #expect(project.runAs == "ci-app")
            let secret = try #require(project.webhookSecret)
            func deliver(_ message: String) async throws -> (Int, String) {
                var body = Self.push(ref: "refs/heads/main", commit: commit, repository: url)
                body = Data(String(decoding: body, as: UTF8.self).replacingOccurrences(of: "a change", with: message).utf8)
                let (status, data) = try await cluster.request(
                    .POST, "/v1/hooks/app", body: body, token: "",
                    headers: [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", Self.signature(body, secret))])
                return (status, String(decoding: data, as: UTF8.self))
            }
            let (status, text) = try await deliver("first")
            #expect(status == 201, "\(text)")
            let started = try API.decoder.decode(API.WebhookResult.self, from: Data(text.utf8))
            #expect(try await cluster.waitForPipeline(try #require(started.pipelineId), timeout: .seconds(120)).state == "succeeded")
            // The deploy it uploaded runs with ci-app's right to deploy to staging, and is
            // the project's deployment, in its delivery metrics too.
            let (_, mine) = try await cluster.request(.GET, "/v1/deployments?project=app")
            #expect(try API.decoder.decode(API.DeploymentList.self, from: mine).deployments.map(\.environment) == ["staging"])
            let (_, theirs) = try await cluster.request(.GET, "/v1/deployments?project=other")
            #expect(try API.decoder.decode(API.DeploymentList.self, from: theirs).deployments.isEmpty)
            let (_, metrics) = try await cluster.request(.GET, "/v1/metrics/dora?project=app")
            #expect(try API.decoder.decode(API.DeliveryMetrics.self, from: metrics).environments.map(\.successes) == [1])
            #expect(try await cluster.request(.GET, "/v1/deployments?project=Bad%20Name").0 == 400)
            let (disabled, disableOutput) = try await Self.gantry(cluster, ["identity", "disable", "ci-app"])
            #expect(disabled, "\(disableOutput)")
            let jobs = try await Self.jobCount(cluster)
            let (refused, refusedText) = try await deliver("second")
            #expect(refused == 403 && refusedText.contains("run_as_refused") && refusedText.contains("ci-app"), "\(refusedText)")
            #expect(try await Self.jobCount(cluster) == jobs)
        }
    }
}
