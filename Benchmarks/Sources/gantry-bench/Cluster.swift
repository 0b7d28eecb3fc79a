import AsyncHTTPClient
import BenchKit
import Foundation
import NIOSSL

/// A coordinator and agents started from the root package's release binaries on
/// 127.0.0.1 with real TLS, in a directory of their own under the run's work dir.
///
/// The same steps as scripts/quickstart and the integration tests' `TestCluster`:
/// `gantry-coordinator init`, `serve` on port 0 (its stdout names the ports), `join-info`,
/// `gantry-agent enroll`, then `gantry-agent run` per slot, each waited for on its
/// "connected to the coordinator" line. `stop()` stops agents first, then the coordinator,
/// each by pid.
final class Cluster {
    let root: String
    let binaries: String
    private(set) var coordinator: ChildProcess?
    /// More coordinators sharing this one's PostgreSQL database (the cluster scenario),
    /// stopped after the agents and before `coordinator`.
    var otherCoordinators: [ChildProcess] = []
    /// Where agents dial (enroll and run) instead of `agentsAddress`: another coordinator
    /// of the same cluster.
    var agentCoordinator: String?
    private(set) var agents: [ChildProcess] = []
    private(set) var agentsAddress = ""
    private(set) var httpAddress = ""
    private(set) var joinToken = ""
    private(set) var caFingerprint = ""
    private(set) var api: APIClient?
    private var enrolled: Set<String> = []
    /// `serve` processes started so far (restarts each get their own stdout file).
    private var starts = 0
    /// Whether `serve` got `--http-tls`: the API is then https with the coordinator's own
    /// certificate, which `tlsClient` verifies against STATE/ca.pem.
    private var httpTLS = false
    private var tlsClient: HTTPClient?

    var coordinatorState: String { root + "/coordinator" }
    var database: String { coordinatorState + "/gantry.sqlite" }
    var work: String { root + "/work" }

    init(name: String, binaries: String, workDir: String) throws {
        root = workDir + "/" + name
        self.binaries = binaries
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    /// The whole simulated fleet connects from 127.0.0.1, which the default per-address
    /// caps (sized for one build host) would refuse; a real fleet spans many addresses.
    static let loopbackFleetLimits = [
        "--max-agent-connections", "60000", "--max-connections-per-address", "60000", "--max-handshakes", "1024",
        "--max-handshakes-per-address", "1024",
    ]

    /// `init` and `serve`; returns once the coordinator printed its ports.
    func startCoordinator(extraArguments: [String] = [], initArguments: [String] = []) throws {
        try initializeCoordinator(extraArguments: initArguments)
        let coordinator = try spawnCoordinator(extraArguments: extraArguments)
        let line = try coordinator.waitForLine(
            containing: Self.listeningLine, in: coordinator.stdoutPath, timeout: .seconds(60))
        try coordinatorListening(line)
    }

    /// `gantry-coordinator init`: the state directory (PKI, tokens; the database is created
    /// by the first `serve`, or by whoever fills it first).
    func initializeCoordinator(extraArguments: [String] = []) throws {
        let initialize = try runCommand(
            binaries + "/gantry-coordinator",
            ["init", "--state", coordinatorState, "--advertise", "127.0.0.1:0"] + extraArguments, workDir: root)
        guard initialize.status == 0 else { throw HarnessError("gantry-coordinator init failed:\n\(initialize.output)") }
    }

    /// What `serve` prints on stdout once both listeners are bound.
    static let listeningLine = "gantry-coordinator listening"

    /// Starts `serve` on the initialized state directory and returns at once; the caller
    /// waits for `listeningLine` in its stdout (a file of its own per start, so a restart
    /// never reads the previous process's line) and passes it to `coordinatorListening`.
    func spawnCoordinator(extraArguments: [String] = []) throws -> ChildProcess {
        starts += 1
        httpTLS = extraArguments.contains("--http-tls")
        let coordinator = try ChildProcess.spawn(
            name: "coordinator", executable: binaries + "/gantry-coordinator",
            arguments: ["serve", "--state", coordinatorState, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]
                + Self.loopbackFleetLimits + extraArguments,
            stdout: root + (starts == 1 ? "/coordinator.out" : "/coordinator-\(starts).out"),
            stderr: root + "/coordinator.log")
        self.coordinator = coordinator
        return coordinator
    }

    /// Takes the addresses from the listening line and sets up the API client and the
    /// join details.
    func coordinatorListening(_ line: String) throws {
        for field in line.split(separator: " ") {
            if field.hasPrefix("agents=") { agentsAddress = String(field.dropFirst("agents=".count)) }
            if field.hasPrefix("http=") { httpAddress = String(field.dropFirst("http=".count)) }
        }
        guard agentsAddress.hasPrefix("127.0.0.1:"), httpAddress.hasPrefix("127.0.0.1:") else {
            throw HarnessError("unexpected listening line: \(line)")
        }
        let info = try runCommand(
            binaries + "/gantry-coordinator", ["join-info", "--state", coordinatorState, "--json"], workDir: root)
        guard info.status == 0,
            let json = try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: String],
            let token = json["token"], let fingerprint = json["ca_fingerprint"]
        else { throw HarnessError("gantry-coordinator join-info failed:\n\(info.output)") }
        joinToken = token
        caFingerprint = fingerprint
        let adminToken = try String(contentsOfFile: coordinatorState + "/admin.token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        if httpTLS {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            let client = tlsClient ?? HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
            tlsClient = client
            api = APIClient(base: "https://\(httpAddress)", token: adminToken, http: client)
        } else {
            api = APIClient(base: "http://\(httpAddress)", token: adminToken)
        }
    }

    /// The CA every certificate of this coordinator chains to (its API's too, with `--http-tls`).
    var caFile: String { coordinatorState + "/ca.pem" }

    /// The API's URL as a workstation's `gantry --server` takes it.
    var serverURL: String { (httpTLS ? "https://" : "http://") + httpAddress }

    var coordinatorPID: pid_t {
        get throws {
            guard let coordinator, coordinator.isRunning else { throw HarnessError("the coordinator is not running") }
            return coordinator.pid
        }
    }

    var client: APIClient {
        get throws {
            guard let api else { throw HarnessError("the coordinator is not started") }
            return api
        }
    }

    /// Enrolls an identity (once per name) in `<root>/agent-<name>` and returns that dir.
    @discardableResult
    func enroll(name: String) throws -> String {
        let state = root + "/agent-\(name)"
        if enrolled.contains(name) { return state }
        let result = try runCommand(
            binaries + "/gantry-agent",
            [
                "enroll", "--coordinator", agentCoordinator ?? agentsAddress, "--token", joinToken, "--ca-fingerprint", caFingerprint,
                "--state", state, "--name", name,
            ], workDir: root)
        guard result.status == 0 else { throw HarnessError("gantry-agent enroll --name \(name) failed:\n\(result.output)") }
        enrolled.insert(name)
        return state
    }

    /// The `gantry-agent run` arguments for one slot.
    func agentArguments(
        identity: String, slot: String, labels: String, cgroups: Bool, workRoot: String? = nil, extraArguments: [String] = []
    ) throws -> [String] {
        let state = try enroll(name: identity)
        return [
            "run", "--state", state, "--coordinator", agentCoordinator ?? agentsAddress, "--work-root", workRoot ?? work, "--slot", slot, "--labels",
            labels,
        ] + (cgroups ? [] : ["--no-cgroups"]) + extraArguments
    }

    /// Starts agents `1...count` (slots named `<prefix><n>`) and waits until each is connected.
    @discardableResult
    func startAgents(
        count: Int, labels: String, cgroups: Bool, identity: String = "bench", slotPrefix: String = "",
        workRoot: String? = nil, extraArguments: [String] = []
    ) throws -> [ChildProcess] {
        var started: [ChildProcess] = []
        for n in 1...count {
            let slot = "\(slotPrefix)\(n)"
            let agent = try ChildProcess.spawn(
                name: "agent \(identity)/\(slot)", executable: binaries + "/gantry-agent",
                arguments: try agentArguments(
                    identity: identity, slot: slot, labels: labels, cgroups: cgroups, workRoot: workRoot,
                    extraArguments: extraArguments),
                stdout: root + "/agent-\(identity)-\(slot).log", stderr: root + "/agent-\(identity)-\(slot).log")
            agents.append(agent)
            started.append(agent)
        }
        for agent in started { _ = try agent.waitForLine(containing: "connected to the coordinator", timeout: .seconds(60)) }
        return started
    }

    /// What the agent's log says about per-job cgroups: "on", "off (--no-cgroups)" or
    /// "unavailable" (no writable cgroup2 hierarchy here).
    static func cgroupMode(of agent: ChildProcess) -> String {
        let log = (try? String(contentsOfFile: agent.stderrPath, encoding: .utf8)) ?? ""
        if log.contains("running each job in its own cgroup") { return "on" }
        if log.contains("per-job cgroups disabled") { return "off (--no-cgroups)" }
        if log.contains("per-job cgroups unavailable") { return "unavailable" }
        return "unknown"
    }

    /// Agents first (an idle agent exits at once on SIGTERM), then the coordinator.
    func stop() {
        for agent in agents { agent.signal(SIGTERM) }
        for agent in agents { agent.stop(grace: .seconds(10)) }
        agents.removeAll()
        for other in otherCoordinators { other.stop(grace: .seconds(15)) }
        otherCoordinators.removeAll()
        coordinator?.stop(grace: .seconds(15))
        // Not from an async context: `stop()` is synchronous, as its callers' `defer`s need.
        try? tlsClient?.syncShutdown()
        tlsClient = nil
    }

    /// Stops everything and removes the cluster's directory (state, database, logs).
    func tearDown() {
        stop()
        try? FileManager.default.removeItem(atPath: root)
    }

    /// The tail of the coordinator's and each agent's log, for a failure message.
    func diagnostics() -> String {
        var text = "--- coordinator ---\n" + ChildProcess.tail(of: root + "/coordinator.log")
        for agent in agents.prefix(4) { text += "\n--- \(agent.name) ---\n" + ChildProcess.tail(of: agent.stderrPath) }
        return text
    }
}
