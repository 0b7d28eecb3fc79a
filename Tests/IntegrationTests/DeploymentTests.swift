import Crypto
import Foundation
import GantryProtocol
import NIOHTTP1
import Testing

/// `gantry deployments`, with the real binaries: a build whose artifact an approved step
/// deploys to staging, and a failed deploy to production, each listed with its commit,
/// the digest it deployed, who approved it, its result and duration.
@Suite("Deployments", .timeLimit(.minutes(5)))
struct DeploymentTests {
    @Test func deploymentsShowWhatWentWhereWhoLetItThroughAndHowItEnded() async throws {
        try await TestCluster.with("deployments", coordinatorArguments: ["--allow-untrusted-environment-steps"]) { cluster in
            try await cluster.startAgent(slot: "1", environment: PipelineUploadTests.agentEnvironment(cluster))
            let shipped = try await cluster.submit(
                """
                steps:
                  - key: build
                    command: "echo release-1 > app.txt"
                    artifacts: [app.txt]
                  - block: Ship to staging?
                    key: approve
                    depends_on: build
                  - key: deploy
                    environment: staging
                    depends_on: approve
                    download: [{step: build, path: app.txt}]
                    command: "cat app.txt"
                """)
            try await waitUntil("the block to wait", timeout: .seconds(60)) {
                try await cluster.pipeline(shipped.id).jobs.contains { $0.key == "approve" && $0.state == "blocked" }
            }
            let (approved, approveOutput) = try await WebhookTests.gantry(cluster, ["approve", shipped.id, "--reason", "looks good"])
            #expect(approved, "\(approveOutput)")
            #expect(try await cluster.waitForPipeline(shipped.id, timeout: .seconds(120)).state == "succeeded")
            let failed = try await cluster.submit("steps:\n  - {key: release, environment: production, command: 'exit 3'}\n")
            #expect(try await cluster.waitForPipeline(failed.id, timeout: .seconds(60)).state == "failed")

            let (listed, output) = try await WebhookTests.gantry(cluster, ["deployments", "--json"])
            #expect(listed, "\(output)")
            let all = try API.decoder.decode(API.DeploymentList.self, from: Data(output.utf8)).deployments
            #expect(all.map(\.environment) == ["production", "staging"], "newest first: \(all)")
            let staging = try #require(all.last)
            let digest = SHA256.hash(data: Data("release-1\n".utf8)).map { String(format: "%02x", $0) }.joined()
            #expect(staging.step == "deploy" && staging.state == "succeeded" && staging.pipelineId == shipped.id)
            #expect(staging.artifacts == [digest], "\(staging)")
            #expect(staging.approvals.map(\.by) == ["admin"] && staging.approvals.first?.step == "approve", "\(staging)")
            #expect((staging.durationSeconds ?? -1) >= 0 && staging.finishedAt != nil)
            let production = try #require(all.first)
            #expect(production.step == "release" && production.state == "failed" && production.artifacts.isEmpty)

            let (one, oneOutput) = try await WebhookTests.gantry(cluster, ["deployments", "staging"])
            #expect(one && oneOutput.contains("staging  succeeded") && oneOutput.contains("artifact sha256:\(digest)"), "\(oneOutput)")
            #expect(oneOutput.contains("approved by admin (approve)") && !oneOutput.contains("production"), "\(oneOutput)")
            // The delivery metrics of that history: staging one success, production one
            // failure, not restored.
            let (measured, metricsOutput) = try await WebhookTests.gantry(cluster, ["metrics", "dora", "--json"])
            #expect(measured, "\(metricsOutput)")
            let metrics = try API.decoder.decode(API.DeliveryMetrics.self, from: Data(metricsOutput.utf8)).environments
            #expect(metrics.map(\.environment) == ["production", "staging"], "\(metrics)")
            #expect(metrics[0].failures == 1 && metrics[0].changeFailureRate == 1 && metrics[0].unrestoredFailures == 1)
            #expect(metrics[1].successes == 1 && metrics[1].changeFailureRate == 0 && (metrics[1].leadTimeMedianSeconds ?? -1) >= 0)
            let (text, textOutput) = try await WebhookTests.gantry(cluster, ["metrics", "dora", "production"])
            #expect(text && textOutput.contains("change failure rate:    100 %") && !textOutput.contains("staging"), "\(textOutput)")
            for query in ["limit=0", "limit=501", "limit=x", "environment="] {
                let (status, _) = try await cluster.request(.GET, "/v1/deployments?\(query)")
                #expect(status == 400, "\(query)")
            }
            for query in ["days=0", "days=367", "environment="] {
                let (status, _) = try await cluster.request(.GET, "/v1/metrics/dora?\(query)")
                #expect(status == 400, "\(query)")
            }
        }
    }
}
