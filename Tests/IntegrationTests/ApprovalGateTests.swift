import Foundation
import GantryProtocol
import Subprocess
import Testing

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Approval gates end to end with the real binaries: a block approved from the CLI
/// releases the deploy, which reads the approver's field as meta-data; one rejected fails
/// the pipeline and runs the rollback; someone the block does not allow is refused; every
/// decision is in the audit log.
@Suite("Approval gates", .serialized, .timeLimit(.minutes(3)))
struct ApprovalGateTests {
    static func pipelineFile(_ gantry: String) -> String {
        """
        steps:
          - key: build
            command: echo built
          - block: "Deploy to production?"
            key: approve
            depends_on: build
            fields:
              - {key: channel, select: Channel, options: [stable, beta], required: true}
          - key: deploy
            depends_on: approve
            command: echo "deploying to $(\(gantry) meta-data get channel)"
          - key: rollback
            depends_on: approve
            when: on_failure
            command: echo rolling back
        """
    }

    static func decision(
        _ cluster: TestCluster, _ command: String, _ pipeline: String, _ extra: [String], token: String? = nil
    ) async throws -> PipelineLanguageTests.CLIResult {
        try await PipelineLanguageTests.gantry(cluster, [command, pipeline] + extra, token: token)
    }

    @Test func approvedFromTheCLIItReleasesTheDeployWithTheApproversField() async throws {
        try await TestCluster.with("approve") { cluster in
            try await cluster.startAgent(slot: "1")
            let pipeline = try await cluster.submit(Self.pipelineFile(cluster.binaries + "/gantry"))
            let block = try PipelineLanguageTests.job(pipeline, "approve")
            try await cluster.waitForJob(block.id, "the block to wait") { $0.state == "blocked" }
            #expect(try await cluster.job(try PipelineLanguageTests.job(pipeline, "deploy").id).state == "waiting")

            // A developer may submit but not decide a block without `allowed:` (it needs deploy).
            let developer = try await AuthorizationTests.hostToken(cluster, identity: "dev", role: "developer")
            let refused = try await Self.decision(cluster, "approve", pipeline.id, ["--field", "channel=beta"], token: developer)
            #expect(refused.status != .exited(0) && refused.all.contains("may not decide block `approve`"), "\(refused.all)")
            // A value outside the options is refused, and changes nothing.
            let wrong = try await Self.decision(cluster, "approve", pipeline.id, ["--field", "channel=nightly"])
            #expect(wrong.status != .exited(0) && wrong.all.contains("must be one of stable, beta"), "\(wrong.all)")
            #expect(try await cluster.job(block.id).state == "blocked")

            let approved = try await Self.decision(
                cluster, "approve", pipeline.id, ["--field", "channel=beta", "--reason", "release 1.4"])
            #expect(approved.status == .exited(0), "\(approved.all)")
            #expect(approved.output.contains("succeeded (approved by admin: release 1.4)"))
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "succeeded")
            #expect(done.jobs.map(\.state) == ["succeeded", "succeeded", "succeeded", "skipped"])
            #expect(try await PipelineLanguageTests.logText(cluster, try PipelineLanguageTests.job(done, "deploy")) == "deploying to beta\n")
            #expect(try PipelineLanguageTests.job(done, "approve").attempt == 0, "no agent ever held the block")

            let (status, data) = try await cluster.request(.GET, "/v1/audit?object=pipeline:\(pipeline.id)")
            #expect(status == 200)
            let records = try API.decoder.decode(API.AuditPage.self, from: data).records
            let approvals = records.filter { $0.action == "pipeline.approve" }
            #expect(approvals.map(\.outcome).sorted() == ["denied", "refused", "succeeded"], "\(approvals)")
            let granted = try #require(approvals.first { $0.outcome == "succeeded" })
            #expect(granted.actor == "admin" && granted.detail["step"] == "approve" && granted.detail["fields"] == "channel")
            #expect(!String(decoding: data, as: UTF8.self).contains("beta"), "field values stay out of the audit log")
        }
    }

    @Test func rejectedItFailsThePipelineAndTheRollbackRuns() async throws {
        try await TestCluster.with("reject") { cluster in
            try await cluster.startAgent(slot: "1")
            let pipeline = try await cluster.submit(Self.pipelineFile(cluster.binaries + "/gantry"))
            let block = try PipelineLanguageTests.job(pipeline, "approve")
            try await cluster.waitForJob(block.id, "the block to wait") { $0.state == "blocked" }
            let rejected = try await Self.decision(cluster, "reject", pipeline.id, ["--step", "approve", "--reason", "smoke tests red"])
            #expect(rejected.status == .exited(0), "\(rejected.all)")
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "failed")
            #expect(done.jobs.map(\.state) == ["succeeded", "failed", "skipped", "succeeded"])
            #expect(try PipelineLanguageTests.job(done, "approve").reason == "rejected by admin: smoke tests red")
            #expect(try await PipelineLanguageTests.logText(cluster, try PipelineLanguageTests.job(done, "rollback")) == "rolling back\n")
            // Nothing waits any more.
            let again = try await Self.decision(cluster, "approve", pipeline.id, ["--field", "channel=stable"])
            #expect(again.status != .exited(0) && again.all.contains("not running"), "\(again.all)")
        }
    }

    /// The operator's environment rules refuse a deploy from the wrong branch or without
    /// a gate, naming the rule, and put deploys of a one-at-a-time environment in its group.
    @Test func environmentRulesRefuseADeployNamingTheRule() async throws {
        let rules = FileManager.default.temporaryDirectory.appendingPathComponent("env-\(UUID().uuidString).yml").path
        try "environments:\n  production:\n    branches: [main]\n    required_approval: true\n"
            .write(toFile: rules, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: rules) }
        try await TestCluster.with(
            "environment-rules", coordinatorArguments: ["--environments", rules, "--allow-untrusted-environment-steps"]
        ) { cluster in
            let direct = "steps:\n  - {key: deploy, command: 'true', environment: production}\n"
            func submit(_ yaml: String, branch: String) async throws -> (Int, String) {
                let body = try API.encoder.encode(API.SubmitPipeline(yaml: yaml, branch: branch))
                let (status, data) = try await cluster.request(.POST, "/v1/pipelines", body: body)
                return (status, String(decoding: data, as: UTF8.self))
            }
            let (wrongBranch, why) = try await submit(direct, branch: "feature/x")
            #expect(wrongBranch == 422 && why.contains("rule `branches`"), "\(why)")
            let (ungated, because) = try await submit(direct, branch: "main")
            #expect(ungated == 422 && because.contains("rule `required_approval`"), "\(because)")
            let (gated, body) = try await submit(
                "steps:\n  - block: Ship?\n    key: approve\n  - {key: deploy, command: 'true', environment: production, depends_on: approve}\n",
                branch: "main")
            #expect(gated == 201, "\(body)")
            let pipeline = try API.decoder.decode(API.Pipeline.self, from: Data(body.utf8))
            #expect(pipeline.jobs.map(\.state) == ["blocked", "waiting"])
            #expect(pipeline.jobs.last?.concurrencyGroup == "environment:production")
        }
    }
}
