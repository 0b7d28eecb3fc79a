import AsyncHTTPClient
import Foundation
import GantryProtocol
import NIOCore
import NIOHTTP1
import NIOFoundationCompat
import Subprocess
import Testing

/// A coordinator and agents started from the real binaries on 127.0.0.1 with real TLS,
/// in a fresh temporary directory. Every process is stopped by pid in `shutdown()`.
final class TestCluster: @unchecked Sendable {
    let root: String
    let binaries: String
    private(set) var coordinator: ChildProcess!
    private(set) var agents: [ChildProcess] = []
    private(set) var agentAddress = ""
    private(set) var httpAddress = ""
    private(set) var adminToken = ""
    private(set) var joinToken = ""
    private(set) var caFingerprint = ""
    let http = HTTPClient(eventLoopGroupProvider: .singleton)

    var coordinatorState: String { root + "/coordinator" }
    var agentState: String { root + "/agent" }
    var serverURL: String { "http://\(httpAddress)" }

    /// The directory holding the built executables (next to the test bundle).
    static func binaryDirectory() -> String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: executable).deletingLastPathComponent()
        // Inside gantryPackageTests.xctest/... on Linux the bundle is a single file in the bin dir.
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("gantry-coordinator").path),
            url.path != "/"
        {
            url = url.deletingLastPathComponent()
        }
        return url.path
    }

    init(name: String) throws {
        root = NSTemporaryDirectory() + "gantry-it-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        binaries = Self.binaryDirectory()
    }

    /// `init`, `serve` on port 0, and enrollment of this host's agent identity.
    func startCoordinator(extraArguments: [String] = [], environment: [String: String] = [:]) async throws {
        if !FileManager.default.fileExists(atPath: coordinatorState + "/admin.token") {
            let initialize = try await Subprocess.run(
                .path(.init(binaries + "/gantry-coordinator")),
                arguments: ["init", "--state", coordinatorState, "--advertise", "127.0.0.1:0"],
                output: .string(limit: 65536), error: .string(limit: 65536))
            guard initialize.terminationStatus.isSuccess else {
                throw TimedOut(description: "init failed: \(initialize.standardError)")
            }
        }
        adminToken = try String(contentsOfFile: coordinatorState + "/admin.token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // The default handshake bound (5 s) is for production; two loaded cores running the
        // whole suite have been seen to take 9.7 s for one TLS handshake, and an agent that
        // never gets through fails a test about something else. Tests of the bound pass their own.
        let handshake = extraArguments.contains("--handshake-timeout") ? [] : ["--handshake-timeout", "30"]
        coordinator = try await ChildProcess(
            name: "coordinator", executable: binaries + "/gantry-coordinator",
            arguments: [
                "serve", "--state", coordinatorState, "--listen", "127.0.0.1:\(agentAddress.split(separator: ":").last ?? "0")",
                "--http", "127.0.0.1:\(httpAddress.split(separator: ":").last ?? "0")",
            ] + handshake + extraArguments,
            environment: environment,
            logFile: root + "/coordinator-\(Date().timeIntervalSince1970).log")
        let line = try await coordinator.waitForLine(containing: "gantry-coordinator listening")
        for field in line.split(separator: " ") {
            if field.hasPrefix("agents=") { agentAddress = String(field.dropFirst("agents=".count)) }
            if field.hasPrefix("http=") { httpAddress = String(field.dropFirst("http=".count)) }
        }
        let info = try await Subprocess.run(
            .path(.init(binaries + "/gantry-coordinator")), arguments: ["join-info", "--state", coordinatorState, "--json"],
            output: .string(limit: 65536), error: .discarded)
        let json = try JSONSerialization.jsonObject(with: Data((info.standardOutput).utf8)) as? [String: String]
        joinToken = json?["token"] ?? ""
        caFingerprint = json?["ca_fingerprint"] ?? ""
    }

    func enroll(name: String = "testhost", state: String? = nil, token: String? = nil) async throws -> (Bool, String) {
        let result = try await Subprocess.run(
            .path(.init(binaries + "/gantry-agent")),
            arguments: [
                "enroll", "--coordinator", agentAddress, "--token", token ?? joinToken, "--ca-fingerprint", caFingerprint,
                "--state", state ?? agentState, "--name", name,
            ],
            output: .string(limit: 65536), error: .string(limit: 65536))
        return (result.terminationStatus.isSuccess, (result.standardOutput) + (result.standardError))
    }

    @discardableResult
    func startAgent(
        slot: String, labels: String = "os=linux", coordinator address: String? = nil, extraArguments: [String] = [],
        environment: [String: String] = [:]
    ) async throws -> ChildProcess {
        if !FileManager.default.fileExists(atPath: agentState + "/agent.pem") {
            let (ok, output) = try await enroll()
            guard ok else { throw TimedOut(description: "enroll failed: \(output)") }
        }
        let agent = try await ChildProcess(
            name: "agent-\(slot)", executable: binaries + "/gantry-agent",
            arguments: [
                "run", "--state", agentState, "--work-root", root + "/work", "--slot", slot, "--labels", labels,
                "--heartbeat-interval", "0.5",
            ] + (address.map { ["--coordinator", $0] } ?? []) + extraArguments,
            environment: environment, logFile: root + "/agent-\(slot).log")
        agents.append(agent)
        _ = try await agent.waitForLine(containing: "connected to the coordinator")
        return agent
    }

    /// Starts `gantry-agent scale` with this cluster's agent identity; it is stopped (and
    /// drains the slots it started) with the rest of the cluster.
    @discardableResult
    func startScaler(_ arguments: [String], name: String = "scaler") async throws -> ChildProcess {
        if !FileManager.default.fileExists(atPath: agentState + "/agent.pem") {
            let (ok, output) = try await enroll()
            guard ok else { throw TimedOut(description: "enroll failed: \(output)") }
        }
        let scaler = try await ChildProcess(
            name: name, executable: binaries + "/gantry-agent",
            arguments: ["scale", "--state", agentState, "--name", name] + arguments, logFile: root + "/\(name).log")
        agents.append(scaler)
        _ = try await scaler.waitForLine(containing: "scaler connected to the coordinator")
        return scaler
    }

    // MARK: - API

    /// Calls the API. Every JSON response is checked against docs/openapi.json
    /// (`APIContract`): one the document does not describe fails the calling test.
    func request(
        _ method: HTTPMethod, _ path: String, body: Data? = nil, token: String? = nil, headers: [(String, String)] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (Int, Data) {
        var request = HTTPClientRequest(url: serverURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token ?? adminToken)")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        let response = try await http.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 256 * 1024 * 1024)
        let status = Int(response.status.code)
        let data = Data(buffer: bytes)
        APIContract.shared.check(
            method: method.rawValue, path: path, status: status, contentType: response.headers.first(name: "Content-Type"),
            body: data, sourceLocation: sourceLocation)
        return (status, data)
    }

    func submit(_ yaml: String, file: String = "test.yml") async throws -> API.Pipeline {
        let (status, data) = try await request(.POST, "/v1/pipelines", body: try API.encoder.encode(API.SubmitPipeline(yaml: yaml, file: file)))
        guard status == 201 else { throw TimedOut(description: "submit failed \(status): \(String(decoding: data, as: UTF8.self))") }
        return try API.decoder.decode(API.Pipeline.self, from: data)
    }

    func pipeline(_ id: String) async throws -> API.Pipeline {
        let (_, data) = try await request(.GET, "/v1/pipelines/\(id)")
        return try API.decoder.decode(API.Pipeline.self, from: data)
    }

    func waitForPipeline(_ id: String, timeout: Duration = .seconds(60)) async throws -> API.Pipeline {
        var latest: API.Pipeline?
        try await waitUntil("pipeline \(id) to finish", timeout: timeout) {
            latest = try await self.pipeline(id)
            return latest!.state != "running"
        }
        return latest!
    }

    func log(_ jobID: String, attempt: Int? = nil) async throws -> Data {
        try await request(.GET, "/v1/jobs/\(jobID)/log" + (attempt.map { "?attempt=\($0)" } ?? "")).1
    }

    func job(_ id: String) async throws -> API.Job {
        let (_, data) = try await request(.GET, "/v1/jobs/\(id)")
        return try API.decoder.decode(API.Job.self, from: data)
    }

    func attempts(_ jobID: String) async throws -> [API.Attempt] {
        let (_, data) = try await request(.GET, "/v1/jobs/\(jobID)/attempts")
        return try API.decoder.decode([API.Attempt].self, from: data)
    }

    /// Waits until the job satisfies `condition` and returns it.
    @discardableResult
    func waitForJob(_ id: String, _ what: String, timeout: Duration = .seconds(60), _ condition: @escaping (API.Job) -> Bool)
        async throws -> API.Job
    {
        var latest: API.Job?
        try await waitUntil("job \(id) \(what)", timeout: timeout) {
            latest = try await self.job(id)
            return condition(latest!)
        }
        return latest!
    }

    /// Sends API requests to another coordinator's HTTP address from now on.
    func useAPI(at address: String) {
        httpAddress = address
    }

    /// Stops the coordinator with SIGKILL (as a crash would) and waits for it to be gone.
    func killCoordinator() async throws {
        coordinator.signal(SIGKILL)
        _ = try await coordinator.waitForExit(timeout: .seconds(30))
    }

    func shutdown() async {
        for agent in agents { await agent.stop() }
        await coordinator?.stop()
        try? await http.shutdown()
    }

    /// Runs `body` against a fresh cluster whose coordinator is already started, records
    /// any error with the tail of every process's log, then stops everything.
    static func with(
        _ name: String, coordinatorArguments: [String] = [], _ body: (TestCluster) async throws -> Void
    ) async throws {
        let cluster = try TestCluster(name: name)
        defer { cluster.removeFiles() }
        do {
            try await cluster.startCoordinator(extraArguments: coordinatorArguments)
            try await body(cluster)
        } catch {
            var logs = "\n--- coordinator ---\n\(cluster.coordinator?.output.suffix(4000) ?? "")"
            for agent in cluster.agents { logs += "\n--- \(agent.name) ---\n\(agent.output.suffix(2500))" }
            Issue.record("\(error)\(logs)")
        }
        await cluster.shutdown()
    }

    /// Leaves the directory for inspection when a test failed (`GANTRY_KEEP_TEST_DIRS=1`).
    func removeFiles() {
        if ProcessInfo.processInfo.environment["GANTRY_KEEP_TEST_DIRS"] == nil {
            try? FileManager.default.removeItem(atPath: root)
        }
    }
}
