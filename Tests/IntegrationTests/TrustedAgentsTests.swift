import Foundation
import GantryProtocol
import Subprocess
import SystemPackage
import Testing
import X509

/// Trusted agents with the real binaries: labels that grant trust are bound at
/// enrollment (join tokens), certificates are renewed by the agent, a forgotten host is
/// refused.
@Suite("Trusted agents", .serialized, .timeLimit(.minutes(5)))
struct TrustedAgentsTests {
    /// `gantry-coordinator ARGS` to completion: whether it succeeded, and its output.
    static func coordinatorCommand(_ cluster: TestCluster, _ arguments: [String]) async throws -> (Bool, String) {
        let result = try await Subprocess.run(
            .path(.init(cluster.binaries + "/gantry-coordinator")), arguments: Arguments(arguments),
            output: .string(limit: 65536), error: .string(limit: 65536))
        return (result.terminationStatus.isSuccess, result.standardOutput + result.standardError)
    }

    /// The agents a test started itself, stopped by pid whatever happens.
    final class Started: @unchecked Sendable {
        var processes: [ChildProcess] = []

        func stopAll() async {
            for process in processes { await process.stop() }
        }
    }

    /// A fresh cluster; every agent started through `startAgent` is stopped at the end.
    static func with(
        _ name: String, coordinatorArguments: [String] = [], _ body: (TestCluster, Started) async throws -> Void
    ) async throws {
        try await TestCluster.with(name, coordinatorArguments: coordinatorArguments) { cluster in
            let started = Started()
            do {
                try await body(cluster, started)
            } catch {
                await started.stopAll()
                throw error
            }
            await started.stopAll()
        }
    }

    /// `gantry-agent run` on `state`, not waiting for it to connect (it may be refused).
    static func startAgent(
        _ cluster: TestCluster, _ started: Started, state: String, slot: String, labels: String = "os=linux"
    ) async throws -> ChildProcess {
        let process = try await ChildProcess(
            name: "agent-\(slot)", executable: cluster.binaries + "/gantry-agent",
            arguments: [
                "run", "--state", state, "--work-root", cluster.root + "/work", "--slot", slot, "--labels", labels,
                "--heartbeat-interval", "0.5",
            ],
            logFile: cluster.root + "/agent-\(slot)-\(UInt32.random(in: 0...UInt32.max)).log")
        started.processes.append(process)
        return process
    }

    static func json(_ text: String) throws -> Any {
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("{") || $0.hasPrefix("[") })
        return try JSONSerialization.jsonObject(with: Data(line.utf8))
    }

    static func serial(_ path: String) throws -> String {
        let certificate = try Certificate(pemEncoded: try String(contentsOfFile: path, encoding: .utf8))
        return PeerCertificate(certificate)?.serial ?? ""
    }

    @Test func aTrustedLabelNeedsAJoinTokenThatGrantsIt() async throws {
        try await Self.with("trust-labels") { cluster, started in
            // Enrolled with the legacy join.token (`*`): claiming queue=deploy is refused for
            // good, naming the label and the fix.
            let (enrolled, enrollOutput) = try await cluster.enroll()
            #expect(enrolled, "\(enrollOutput)")
            let refused = try await Self.startAgent(cluster, started, state: cluster.agentState, slot: "1", labels: "os=linux,queue=deploy")
            let status = try await refused.waitForExit(timeout: .seconds(30))
            #expect(!status.isSuccess)
            #expect(refused.output.contains("label queue=deploy is not allowed"), "\(refused.output.suffix(2000))")
            #expect(refused.output.contains("join-token create"))
            // Without the trusted label the same host is welcome.
            try await cluster.startAgent(slot: "2", labels: "os=linux")

            // A single-use token that grants queue=deploy.
            let (created, createOutput) = try await Self.coordinatorCommand(
                cluster,
                [
                    "join-token", "create", "--state", cluster.coordinatorState, "--labels", "queue=deploy,*", "--uses", "1",
                    "--expires", "1h", "--description", "deploy hosts", "--json",
                ])
            #expect(created, "\(createOutput)")
            let token = try #require(try Self.json(createOutput) as? [String: String])
            let secret = try #require(token["token"])
            let id = try #require(token["id"])
            #expect(token["enroll_command"]?.contains(secret) == true)
            let deployState = cluster.root + "/deploy"
            let (deployEnrolled, deployOutput) = try await cluster.enroll(name: "deployhost", state: deployState, token: secret)
            #expect(deployEnrolled, "\(deployOutput)")
            let deployer = try await Self.startAgent(cluster, started, state: deployState, slot: "1", labels: "queue=deploy,os=linux")
            _ = try await deployer.waitForLine(containing: "connected to the coordinator")
            let pipeline = try await cluster.submit("steps:\n  - key: ship\n    command: echo shipped\n    agents: {queue: deploy}\n")
            let done = try await cluster.waitForPipeline(pipeline.id, timeout: .seconds(30))
            #expect(done.state == "succeeded")
            #expect(try await cluster.job(done.jobs[0].id).agentId == "deployhost/1")
            // It was single-use.
            let (second, secondOutput) = try await cluster.enroll(name: "another", state: cluster.root + "/another", token: secret)
            #expect(!second)
            #expect(secondOutput.contains("used"), "\(secondOutput)")

            // Listed without the secret; revoked.
            let (listed, listOutput) = try await Self.coordinatorCommand(cluster, ["join-token", "list", "--state", cluster.coordinatorState, "--json"])
            #expect(listed)
            #expect(listOutput.contains(id) && !listOutput.contains(secret))
            let (revoked, revokeOutput) = try await Self.coordinatorCommand(cluster, ["join-token", "revoke", "--state", cluster.coordinatorState, id])
            #expect(revoked, "\(revokeOutput)")
            let rows = try #require(try Self.json(try await Self.coordinatorCommand(cluster, ["join-token", "list", "--state", cluster.coordinatorState, "--json"]).1) as? [[String: String]])
            #expect(rows.first { $0["id"] == id }?["state"] == "revoked")
            let (unknown, _) = try await Self.coordinatorCommand(cluster, ["join-token", "revoke", "--state", cluster.coordinatorState, "jt_00000000"])
            #expect(!unknown)
        }
    }

    @Test func agentsRenewTheirCertificateBeforeItExpires() async throws {
        // Certificates valid 120 s after issue (backdated 300 s): past two thirds at once.
        try await Self.with("trust-renew", coordinatorArguments: ["--agent-certificate-seconds", "120"]) { cluster, started in
            let (enrolled, output) = try await cluster.enroll()
            #expect(enrolled, "\(output)")
            let enrolledSerial = try Self.serial(cluster.agentState + "/agent.pem")
            // Two slots find it due at once: one renews, the files stay a matching pair.
            let first = try await Self.startAgent(cluster, started, state: cluster.agentState, slot: "1", labels: "os=linux")
            let second = try await Self.startAgent(cluster, started, state: cluster.agentState, slot: "2", labels: "os=linux")
            try await waitUntil("a slot to install a renewed certificate", timeout: .seconds(30)) {
                (first.lines + second.lines).contains { $0.contains("installed a renewed certificate") }
            }
            let renewedSerial = try Self.serial(cluster.agentState + "/agent.pem")
            #expect(renewedSerial != enrolledSerial)
            let key = try Certificate.PrivateKey(pemEncoded: try String(contentsOfFile: cluster.agentState + "/agent.key", encoding: .utf8))
            let certificate = try Certificate(pemEncoded: try String(contentsOfFile: cluster.agentState + "/agent.pem", encoding: .utf8))
            #expect(certificate.publicKey == key.publicKey)
            let ca = try Certificate(pemEncoded: try String(contentsOfFile: cluster.coordinatorState + "/ca.pem", encoding: .utf8))
            #expect(EnrollmentChecks.issuedCertificateProblem(certificate, ca: ca, publicKey: key.publicKey) == nil)
            #expect(PeerCertificate(certificate)?.name == "testhost")

            // A new process connects with the renewed pair and runs a job.
            await first.stop()
            await second.stop()
            let third = try await Self.startAgent(cluster, started, state: cluster.agentState, slot: "3", labels: "os=linux")
            _ = try await third.waitForLine(containing: "connected to the coordinator")
            let pipeline = try await cluster.submit("steps:\n  - key: after-renewal\n    command: echo renewed\n")
            #expect(try await cluster.waitForPipeline(pipeline.id, timeout: .seconds(30)).state == "succeeded")
            await third.stop()
        }
    }

    /// `gantry agents forget` (the real CLI) revokes the host's certificate; only a join
    /// token bound to the name (`join-token create --name`) enrolls it again.
    @Test func aForgottenAgentIsRefused() async throws {
        try await Self.with("trust-forget") { cluster, started in
            let agent = try await cluster.startAgent(slot: "1")
            let forget = try await Subprocess.run(
                .path(FilePath(cluster.binaries + "/gantry")),
                arguments: ["agents", "forget", "testhost/1", "--server", cluster.serverURL, "--token", cluster.adminToken],
                output: .string(limit: 64 * 1024), error: .string(limit: 64 * 1024))
            #expect(forget.terminationStatus.isSuccess, "\(forget.standardError)")
            #expect(forget.standardOutput.contains("forgot host testhost"), "\(forget.standardOutput)")
            // Its connection is closed; its reconnect is refused for good.
            let exit = try await agent.waitForExit(timeout: .seconds(30))
            #expect(!exit.isSuccess)
            #expect(agent.output.contains("revoked"))
            let again = try await Self.startAgent(cluster, started, state: cluster.agentState, slot: "2", labels: "os=linux")
            #expect(!(try await again.waitForExit(timeout: .seconds(30))).isSuccess)
            // The legacy join.token (anyone's) cannot undo the forget.
            let (legacy, legacyOutput) = try await cluster.enroll(state: cluster.root + "/impostor")
            #expect(!legacy)
            #expect(legacyOutput.contains("was forgotten") && legacyOutput.contains("join-token create --name testhost"), "\(legacyOutput)")
            // A token bound to it enrolls it again (a new certificate): the host is back.
            let (created, createOutput) = try await Self.coordinatorCommand(
                cluster, ["join-token", "create", "--state", cluster.coordinatorState, "--name", "testhost", "--json"])
            #expect(created, "\(createOutput)")
            let token = try #require(try Self.json(createOutput) as? [String: String])
            let secret = try #require(token["token"])
            #expect(token["host"] == "testhost" && token["uses"] == "1")
            #expect(token["enroll_command"]?.contains("--name testhost") == true)
            let listed = try #require(
                try Self.json(try await Self.coordinatorCommand(cluster, ["join-token", "list", "--state", cluster.coordinatorState, "--json"]).1)
                    as? [[String: String]])
            #expect(listed.first { $0["id"] == token["id"] }?["host"] == "testhost")
            // Bound to testhost: it enrolls nothing else.
            let (elsewhere, elsewhereOutput) = try await cluster.enroll(
                name: "elsewhere", state: cluster.root + "/elsewhere", token: secret)
            #expect(!elsewhere)
            #expect(elsewhereOutput.contains("enrolls host testhost only"), "\(elsewhereOutput)")
            let (enrolled, output) = try await cluster.enroll(token: secret)
            #expect(enrolled, "\(output)")
            let back = try await Self.startAgent(cluster, started, state: cluster.agentState, slot: "3", labels: "os=linux")
            _ = try await back.waitForLine(containing: "connected to the coordinator")
            await back.stop()
        }
    }
}
