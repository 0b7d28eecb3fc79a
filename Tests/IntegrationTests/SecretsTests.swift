import AsyncHTTPClient
import Foundation
import GantryProtocol
import Subprocess
import Testing

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Secrets end to end with the real binaries: set through the `gantry` CLI (value on
/// stdin), requested by steps, given only where the scope allows, never stored in clear.
///
/// The steps test presence with exit statuses, never by printing a value: masking in the
/// log is the agent's job and this test must not depend on it.
@Suite("Secrets", .serialized, .timeLimit(.minutes(3)))
struct SecretsTests {
    static let pipelineValue = "pipeline-secret-4b1d9e"
    static let productionValue = "production-secret-7c3a51"

    /// `gantry secret ...` with `input` on stdin.
    static func gantry(_ cluster: TestCluster, _ arguments: [String], input: String = "") async throws -> (Bool, String) {
        let result = try await Subprocess.run(
            .path(.init(cluster.binaries + "/gantry")),
            arguments: .init(["secret"] + arguments + ["--server", cluster.serverURL]),
            environment: .inherit.updating(["GANTRY_TOKEN": cluster.adminToken]),
            input: .string(input),
            output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        return (result.terminationStatus.isSuccess, (result.standardOutput) + (result.standardError))
    }

    @Test func anEnvironmentSecretIsAbsentFromAStepOutsideThatEnvironment() async throws {
        // Scoping is under test here, not placement: the production step may run on the one
        // untrusted test agent (AuthorizationTests covers the trusted-agent rule).
        try await TestCluster.with("secrets", coordinatorArguments: ["--allow-untrusted-environment-steps"]) { cluster in
            let key = cluster.coordinatorState + "/secrets.key"
            let attributes = try FileManager.default.attributesOfItem(atPath: key)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)

            var (ok, output) = try await Self.gantry(cluster, ["set", "SHARED_SECRET"], input: Self.pipelineValue + "\n")
            #expect(ok, "\(output)")
            (ok, output) = try await Self.gantry(
                cluster, ["set", "PROD_SECRET", "--scope", "environment:production"], input: Self.productionValue)
            #expect(ok, "\(output)")
            // Refused: too short, a reserved name, projects, and no value at all.
            (ok, output) = try await Self.gantry(cluster, ["set", "SHORT_SECRET"], input: "1234\n")
            #expect(!ok && output.contains("at least 8"), "\(output)")
            (ok, output) = try await Self.gantry(cluster, ["set", "GANTRY_JOB_ID"], input: "long-enough-value")
            #expect(!ok && output.contains("reserved"), "\(output)")
            (ok, output) = try await Self.gantry(cluster, ["set", "SOME_SECRET", "--scope", "project:app"], input: "long-enough-value")
            #expect(!ok && output.contains("projects do not exist yet"), "\(output)")
            (ok, output) = try await Self.gantry(cluster, ["set", "SOME_SECRET"], input: "")
            #expect(!ok && output.contains("no value"), "\(output)")

            (ok, output) = try await Self.gantry(cluster, ["list"])
            #expect(ok && output.contains("SHARED_SECRET") && output.contains("environment:production"), "\(output)")
            #expect(!output.contains(Self.pipelineValue) && !output.contains(Self.productionValue))
            let (status, listed) = try await cluster.request(.GET, "/v1/secrets")
            #expect(status == 200)
            #expect(String(decoding: listed, as: UTF8.self).contains("PROD_SECRET"))
            #expect(!String(decoding: listed, as: UTF8.self).contains(Self.productionValue))

            // A step outside production may not even ask for the production secret.
            let (refusedStatus, refused) = try await cluster.request(
                .POST, "/v1/pipelines",
                body: try API.encoder.encode(
                    API.SubmitPipeline(yaml: "steps:\n  - key: sneaky\n    command: 'true'\n    secrets: [PROD_SECRET]\n")))
            #expect(refusedStatus == 422, "\(String(decoding: refused, as: UTF8.self))")

            try await cluster.startAgent(slot: "1")
            let marker = cluster.root + "/checked"
            let pipeline = try await cluster.submit(
                """
                steps:
                  - key: outside
                    secrets: [SHARED_SECRET]
                    command: |
                      [ -z "${PROD_SECRET:-}" ] || exit 41
                      echo outside-ran >> \(marker)
                  - key: production
                    environment: production
                    secrets: [SHARED_SECRET, PROD_SECRET]
                    command: |
                      [ -z "${PROD_SECRET:-}" ] && exit 42
                      [ "${#PROD_SECRET}" -eq \(Self.productionValue.utf8.count) ] || exit 43
                      [ -n "${SHARED_SECRET:-}" ] || exit 44
                      echo production-ran >> \(marker)
                """)
            let done = try await cluster.waitForPipeline(pipeline.id)
            let outside = try #require(done.jobs.first { $0.key == "outside" })
            let production = try #require(done.jobs.first { $0.key == "production" })
            // The environment secret never reached the step outside production.
            #expect(outside.state == "succeeded", "exit \(String(describing: outside.exitStatus))")
            // The production step got both, in its environment.
            #expect(production.state == "succeeded", "exit \(String(describing: production.exitStatus))")
            let ran = (try? String(contentsOfFile: marker, encoding: .utf8)) ?? ""
            #expect(ran.contains("outside-ran") && ran.contains("production-ran"), "\(ran)")

            // Neither value is anywhere in the coordinator's database or its WAL, nor in
            // the coordinator's own output.
            for suffix in ["", "-wal"] {
                let path = cluster.coordinatorState + "/gantry.sqlite" + suffix
                guard let bytes = FileManager.default.contents(atPath: path) else { continue }
                #expect(bytes.range(of: Data(Self.pipelineValue.utf8)) == nil, "\(path)")
                #expect(bytes.range(of: Data(Self.productionValue.utf8)) == nil, "\(path)")
            }
            #expect(!cluster.coordinator.output.contains(Self.productionValue))
            #expect(!cluster.coordinator.output.contains(Self.pipelineValue))
        }
    }

    @Test func rotateKeyIsRefusedWhileServingAndKeepsSecretsAfterARestart() async throws {
        try await TestCluster.with("secrets-rotate") { cluster in
            var (ok, output) = try await Self.gantry(cluster, ["set", "SHARED_SECRET"], input: Self.pipelineValue)
            #expect(ok, "\(output)")
            let rotate = { () async throws -> (Bool, String) in
                let result = try await Subprocess.run(
                    .path(.init(cluster.binaries + "/gantry-coordinator")),
                    arguments: ["rotate-key", "--state", cluster.coordinatorState],
                    output: .string(limit: 65536), error: .string(limit: 65536))
                return (result.terminationStatus.isSuccess, result.standardOutput + result.standardError)
            }
            (ok, output) = try await rotate()
            #expect(!ok && output.contains("in use by a running"), "\(output)")
            await cluster.coordinator.stop()
            (ok, output) = try await rotate()
            #expect(ok && output.contains("Re-encrypted 1 secret"), "\(output)")
            try await cluster.startCoordinator()
            (ok, output) = try await Self.gantry(cluster, ["list"])
            #expect(ok && output.contains("SHARED_SECRET"), "\(output)")
            // A pipeline naming it is accepted: the secret opened under the new key.
            _ = try await cluster.submit("steps:\n  - command: 'true'\n    secrets: [SHARED_SECRET]\n")
        }
    }
}
