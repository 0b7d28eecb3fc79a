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
            // And as Prometheus gauges.
            let (_, scraped) = try await cluster.request(.GET, "/metrics")
            let prometheus = String(decoding: scraped, as: UTF8.self)
            #expect(prometheus.contains("gantry_dora_change_failure_rate{environment=\"production\"} 1.0"), "\(prometheus.suffix(1500))")
            #expect(prometheus.contains("gantry_dora_unrestored_failures{environment=\"production\"} 1.0"))
            #expect(prometheus.contains("# TYPE gantry_dora_deployments_per_day gauge"))
            for query in ["days=0", "days=367", "environment="] {
                let (status, _) = try await cluster.request(.GET, "/v1/metrics/dora?\(query)")
                #expect(status == 400, "\(query)")
            }
        }
    }

    /// A rollback deploys the earlier deployment's step again, downloading the very same
    /// digest, after the approval its environment requires; what cannot be rolled back to
    /// says why.
    @Test func aRollbackDeploysTheEarlierDigestAgainAfterItsApproval() async throws {
        let rules = FileManager.default.temporaryDirectory.appendingPathComponent("env-\(UUID().uuidString).yml").path
        try "environments:\n  staging:\n    required_approval: true\n".write(toFile: rules, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: rules) }
        try await TestCluster.with(
            "rollback", coordinatorArguments: ["--environments", rules, "--allow-untrusted-environment-steps"]
        ) { cluster in
            try await cluster.startAgent(slot: "1", environment: PipelineUploadTests.agentEnvironment(cluster))
            let deployed = cluster.root + "/deployed.log"
            func release(_ version: Int) async throws -> API.Deployment {
                let pipeline = try await cluster.submit(
                    """
                    steps:
                      - key: build
                        command: "echo release-\(version) > app.txt"
                        artifacts: [app.txt]
                      - block: Ship?
                        key: approve
                        depends_on: build
                      - key: deploy
                        environment: staging
                        depends_on: approve
                        download: [{step: build, path: app.txt}]
                        command: "cat app.txt >> \(deployed)"
                    """)
                try await Self.approve(cluster, pipeline.id, step: "approve")
                #expect(try await cluster.waitForPipeline(pipeline.id, timeout: .seconds(120)).state == "succeeded")
                return try #require(try await Self.deployments(cluster, "staging").first { $0.pipelineId == pipeline.id })
            }
            let first = try await release(1)
            let second = try await release(2)
            #expect(first.artifacts.count == 1 && first.artifacts != second.artifacts)

            let (rolled, output) = try await WebhookTests.gantry(cluster, ["rollback", "staging", "--to", first.id, "--json"])
            #expect(rolled, "\(output)")
            let rollback = try API.decoder.decode(API.Pipeline.self, from: Data(output.utf8))
            #expect(rollback.source == "rollback" && rollback.artifactsFrom == first.pipelineId)
            #expect(rollback.jobs.map(\.key) == ["approve-rollback", "deploy"], "staging requires approval: \(rollback.jobs)")
            try await Self.approve(cluster, rollback.id, step: "approve-rollback")
            #expect(try await cluster.waitForPipeline(rollback.id, timeout: .seconds(120)).state == "succeeded")
            let log = try String(contentsOfFile: deployed, encoding: .utf8)
            #expect(log == "release-1\nrelease-2\nrelease-1\n", "\(log)")
            let latest = try #require(try await Self.deployments(cluster, "staging").first)
            #expect(latest.pipelineId == rollback.id && latest.artifacts == first.artifacts, "the same digest: \(latest)")
            // For the delivery metrics, release 2 was a failed change, restored by the rollback.
            let (_, metricsData) = try await cluster.request(.GET, "/v1/metrics/dora?environment=staging")
            let staging = try #require(try API.decoder.decode(API.DeliveryMetrics.self, from: metricsData).environments.first)
            #expect(staging.deployments == 3 && staging.failures == 1 && staging.unrestoredFailures == 0, "\(staging)")
            #expect((staging.timeToRestoreMedianSeconds ?? -1) >= 0, "\(staging)")

            // Unknown, another environment's, a job that deploys nothing.
            for (to, environment, expected) in [("nothing", "staging", 404), (first.id, "production", 422)] {
                let (status, data) = try await cluster.request(
                    .POST, "/v1/environments/\(environment)/rollback", body: try API.encoder.encode(API.Rollback(to: to)))
                #expect(status == expected, "\(to) \(environment): \(String(decoding: data, as: UTF8.self))")
            }
        }
    }

    /// A rollback deploys the same bytes or nothing: once a retried build replaced the
    /// artifact a deployment downloaded, rolling back to it is refused, saying why.
    @Test func aRollbackToBytesNoLongerHeldIsRefused() async throws {
        try await TestCluster.with("rollback-changed", coordinatorArguments: ["--allow-untrusted-environment-steps"]) { cluster in
            try await cluster.startAgent(slot: "1", environment: PipelineUploadTests.agentEnvironment(cluster))
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: build
                    command: "date +%s%N > app.txt"
                    artifacts: [app.txt]
                  - key: deploy
                    environment: qa
                    depends_on: build
                    download: [{step: build, path: app.txt}]
                    command: "cat app.txt"
                """)
            #expect(try await cluster.waitForPipeline(pipeline.id, timeout: .seconds(120)).state == "succeeded")
            let deployed = try #require(try await Self.deployments(cluster, "qa").first)
            let build = try #require(try await cluster.pipeline(pipeline.id).jobs.first { $0.key == "build" })
            let (retried, retryOutput) = try await WebhookTests.gantry(cluster, ["retry", build.id])
            #expect(retried, "\(retryOutput)")
            try await waitUntil("the build's second attempt", timeout: .seconds(120)) {
                let job = try await cluster.pipeline(pipeline.id).jobs.first { $0.key == "build" }
                return job?.attempt == 2 && job?.state == "succeeded"
            }
            let (status, data) = try await cluster.request(
                .POST, "/v1/environments/qa/rollback", body: try API.encoder.encode(API.Rollback(to: deployed.id)))
            let text = String(decoding: data, as: UTF8.self)
            #expect(status == 422 && text.contains("no longer holds") && text.contains(deployed.artifacts[0]), "\(text)")
        }
    }

    static func approve(_ cluster: TestCluster, _ pipeline: String, step: String) async throws {
        try await waitUntil("block \(step) of \(pipeline) to wait", timeout: .seconds(60)) {
            try await cluster.pipeline(pipeline).jobs.contains { $0.key == step && $0.state == "blocked" }
        }
        let (approved, output) = try await WebhookTests.gantry(cluster, ["approve", pipeline, "--step", step])
        #expect(approved, "\(output)")
    }

    static func deployments(_ cluster: TestCluster, _ environment: String) async throws -> [API.Deployment] {
        let (_, data) = try await cluster.request(.GET, "/v1/deployments?environment=\(environment)")
        return try API.decoder.decode(API.DeploymentList.self, from: data).deployments
    }
}
