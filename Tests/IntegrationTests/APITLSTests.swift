import Foundation
import GantryProtocol
import Subprocess
import Testing

/// `serve --http-tls` with the real binaries: the CLI verifies the API's certificate
/// against `--ca-file` or the CA it pinned at login, and refuses a server it cannot verify;
/// login refuses a wrong fingerprint; plain HTTP off loopback is refused at start.
@Suite("API over TLS", .serialized, .timeLimit(.minutes(3)))
struct APITLSTests {
    @Test func theCLIVerifiesTheAPIAgainstTheCoordinatorsCA() async throws {
        try await TestCluster.with("api-tls", coordinatorArguments: ["--http-tls"]) { cluster in
            let server = "https://\(cluster.httpAddress)"
            let home = cluster.root + "/home"
            let ca = cluster.coordinatorState + "/ca.pem"

            let verified = try await gantry(cluster, home: home, ["agents", "--server", server, "--ca-file", ca])
            #expect(verified.status == .exited(0), "\(verified.output)")
            let byEnvironment = try await gantry(
                cluster, home: home, ["agents", "--server", server], environment: ["GANTRY_CA_FILE": ca])
            #expect(byEnvironment.status == .exited(0), "\(byEnvironment.output)")

            // No CA given: the system roots do not know the coordinator's CA.
            let unverified = try await gantry(cluster, home: home, ["agents", "--server", server])
            #expect(unverified.status != .exited(0))
            #expect(unverified.output.contains("cannot verify the TLS certificate"), "\(unverified.output)")

            // Another coordinator's CA does not verify this one.
            let other = cluster.root + "/other"
            let initialize = try await Subprocess.run(
                .path(.init(cluster.binaries + "/gantry-coordinator")), arguments: ["init", "--state", other],
                output: .string(limit: 65536), error: .string(limit: 65536))
            #expect(initialize.terminationStatus.isSuccess)
            let wrongCA = try await gantry(cluster, home: home, ["agents", "--server", server, "--ca-file", other + "/ca.pem"])
            #expect(wrongCA.status != .exited(0))
            #expect(wrongCA.output.contains("cannot verify the TLS certificate"), "\(wrongCA.output)")

            // Plain HTTP to the TLS port gets no API.
            let plain = try await gantry(cluster, home: home, ["agents", "--server", "http://\(cluster.httpAddress)"])
            #expect(plain.status != .exited(0))

            // Login with a wrong fingerprint refuses and saves nothing.
            let wrong = "sha256:" + String(repeating: "0", count: 64)
            let refused = try await gantry(
                cluster, home: home, ["login", "--server", server, "--ca-fingerprint", wrong, "--token", cluster.adminToken])
            #expect(refused.status != .exited(0))
            #expect(refused.output.contains("no CA with fingerprint"), "\(refused.output)")
            #expect(!FileManager.default.fileExists(atPath: home + "/.config/gantry/token"))

            // Login with the right one pins the CA; later commands need no flags.
            let login = try await gantry(
                cluster, home: home, ["login", "--server", server, "--ca-fingerprint", cluster.caFingerprint, "--token", cluster.adminToken])
            #expect(login.status == .exited(0), "\(login.output)")
            #expect(login.output.contains("as admin"), "\(login.output)")
            for file in ["ca.pem", "token", "server"] {
                let attributes = try FileManager.default.attributesOfItem(atPath: home + "/.config/gantry/" + file)
                #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(file)")
            }
            let after = try await gantry(cluster, home: home, ["agents"], token: nil)
            #expect(after.status == .exited(0), "\(after.output)")
        }
    }

    @Test func plainHTTPOffLoopbackIsRefusedAtStart() async throws {
        let cluster = try TestCluster(name: "api-plain")
        defer { cluster.removeFiles() }
        let status = try await refusedStatus(cluster)
        await cluster.shutdown()
        #expect(status.0 != .exited(0))
        #expect(status.1.contains("refusing plain HTTP on 0.0.0.0"), "\(status.1)")
        #expect(status.1.contains("--http-tls"))
    }

    /// Runs `serve --http 0.0.0.0:0` and returns how it ended and what it printed.
    private func refusedStatus(_ cluster: TestCluster) async throws -> (TerminationStatus, String) {
        let state = cluster.coordinatorState
        let initialize = try await Subprocess.run(
            .path(.init(cluster.binaries + "/gantry-coordinator")), arguments: ["init", "--state", state],
            output: .string(limit: 65536), error: .string(limit: 65536))
        #expect(initialize.terminationStatus.isSuccess)
        // Refused before anything binds, so no socket ever opens off loopback.
        let serve = try await ChildProcess(
            name: "coordinator", executable: cluster.binaries + "/gantry-coordinator",
            arguments: ["serve", "--state", state, "--listen", "127.0.0.1:0", "--http", "0.0.0.0:0"],
            logFile: cluster.root + "/serve.log")
        let status = try await serve.waitForExit(timeout: .seconds(20))
        await serve.stop()
        return (status, serve.output)
    }

    private func gantry(
        _ cluster: TestCluster, home: String, _ arguments: [String], environment: [String: String] = [:],
        token: String? = ""
    ) async throws -> (status: TerminationStatus, output: String) {
        var env: [Environment.Key: String?] = ["HOME": home, "GANTRY_CA_FILE": nil, "GANTRY_SERVER": nil]
        // updateValue, not subscript assignment: nil must unset the variable, not inherit it.
        env.updateValue(token == nil ? nil : cluster.adminToken, forKey: "GANTRY_TOKEN")
        for (key, value) in environment { env.updateValue(value, forKey: Environment.Key(rawValue: key)!) }
        let result = try await Subprocess.run(
            .path(.init(cluster.binaries + "/gantry")), arguments: Arguments(arguments), environment: .inherit.updating(env),
            output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        return (result.terminationStatus, result.standardOutput + result.standardError)
    }
}
