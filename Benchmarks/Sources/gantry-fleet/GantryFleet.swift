import ArgumentParser
import BenchKit
import Foundation
import GantryProtocol
import NIOCore
import NIOPosix
import NIOSSL

/// `gantry-fleet`: opens thousands of simulated agent connections to one coordinator, for
/// the fleet-size scenario of `gantry-bench`.
///
/// Every connection is what a real idle agent opens: TCP to the coordinator, TLS 1.3 with
/// the enrolled client certificate (one identity shared by all, as systemd slots share
/// one: ids are `<enrolled name>/<n>`), `Hello` → `Welcome`, `Ready`, then heartbeats at
/// the announced interval. It prints one `status …` line per second on stdout (the driver
/// reads them to count heartbeats) and `fleet ready …` once every connection is welcomed.
/// It runs until SIGTERM, or `--duration` seconds at most, so it always ends by itself.
@main
struct GantryFleet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gantry-fleet",
        abstract: "Simulated idle agents for the fleet-size benchmark (real TLS, real handshake, heartbeats).")

    @Option(help: "Coordinator agent address, HOST:PORT (loopback).") var coordinator: String
    @Option(help: "State directory of an identity enrolled with `gantry-agent enroll` (agent.pem, agent.key, ca.pem, agent.json).")
    var state: String
    @Option(help: "Number of simulated agents.") var count: Int
    @Option(help: "Labels of the simulated agents, k=v,k=v: choose ones the benchmark's jobs do not select.")
    var labels: String = "pool=sim"
    @Option(help: "Connections being set up at once.") var concurrency: Int = 64
    @Option(help: "Event loop threads (default: the number of cores).") var threads: Int = System.coreCount
    @Option(help: "Exit after this many seconds even without SIGTERM.") var duration: Double = 1800

    func validate() throws {
        guard count >= 1, count <= 60_000 else { throw ValidationError("--count must be between 1 and 60000") }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard coordinator.hasPrefix("127.") || coordinator.hasPrefix("localhost:") || coordinator.hasPrefix("[::1]:") else {
            throw ValidationError("--coordinator must be a loopback address: the load generator talks to this host only")
        }
    }

    func run() async throws {
        let fileLimit = raiseOpenFileLimit()
        print("fleet open-file limit \(fileLimit)")
        guard fileLimit > count + 64 else {
            throw ValidationError("the open-file limit (\(fileLimit)) is too low for \(count) connections: raise the hard limit (ulimit -Hn)")
        }
        let identity = try Identity(stateDirectory: state)
        let sslContext = try NIOSSLContext(configuration: identity.tls)
        let (host, port) = try parseAddress(coordinator)
        let labelMap = try parseLabels(labels)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(threads, 1))
        let counters = FleetCounters()
        let started = ContinuousClock.now
        let deadline = started + .seconds(duration)

        let printer = Task {
            while !Task.isCancelled, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .seconds(1))
                emit("\(counters.statusLine) elapsed=\(String(format: "%.3f", (ContinuousClock.now - started).seconds))")
            }
        }
        defer { printer.cancel() }

        let name = identity.name
        await withTaskGroup(of: Void.self) { tasks in
            // At most `concurrency` handshakes in flight: a new one starts as one finishes.
            var next = 0
            while next < count, ContinuousClock.now < deadline {
                if next >= concurrency, await tasks.next() == nil { break }
                let index = next
                next += 1
                tasks.addTask {
                    await connectSimulatedAgent(
                        index: index, host: host, port: port, name: name, labels: labelMap, sslContext: sslContext,
                        group: group, counters: counters, deadline: deadline)
                }
            }
        }
        let elapsed = (ContinuousClock.now - started).seconds
        emit(
            "fleet ready welcomed=\(counters.welcomed.load(ordering: .relaxed)) of=\(count) "
                + "connect_failures=\(counters.connectFailures.load(ordering: .relaxed)) elapsed=\(String(format: "%.3f", elapsed))"
                + (counters.firstError.withLock { $0 }.map { " first_error=\($0.replacingOccurrences(of: "\n", with: " "))" } ?? ""))
        while ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(500))
        }
        emit("fleet exiting: --duration reached")
    }
}

/// Connects one simulated agent and waits for its `Welcome`; a refused or failed
/// connection is retried a few times (a burst can overflow the listen backlog).
func connectSimulatedAgent(
    index: Int, host: String, port: Int, name: String, labels: [String: String], sslContext: NIOSSLContext,
    group: MultiThreadedEventLoopGroup, counters: FleetCounters, deadline: ContinuousClock.Instant
) async {
    counters.connecting.add(1, ordering: .relaxed)
    defer { counters.connecting.subtract(1, ordering: .relaxed) }
    for attempt in 1...5 {
        guard ContinuousClock.now < deadline else { return }
        let loop = group.next()
        let welcomed = loop.makePromise(of: Void.self)
        do {
            let channel = try await ClientBootstrap(group: loop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(30))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: sslContext, serverHostname: nil))
                        try GantryFraming.addHandlers(to: channel.pipeline.syncOperations)
                        try channel.pipeline.syncOperations.addHandler(
                            SimulatedAgentHandler(
                                agentID: "\(name)/\(index)", labels: labels, counters: counters, welcomed: welcomed))
                    }
                }
                .connect(host: host, port: port).get()
            // Bounded: a coordinator that never answers gets the connection closed,
            // which fails the promise.
            let timeout = channel.eventLoop.scheduleTask(in: .seconds(60)) { channel.close(promise: nil) }
            defer { timeout.cancel() }
            try await welcomed.futureResult.get()
            return
        } catch {
            welcomed.fail(error)
            counters.record(error: "connect \(name)/\(index) attempt \(attempt): \(error)")
            try? await Task.sleep(for: .milliseconds(100 * attempt))
        }
    }
    counters.connectFailures.add(1, ordering: .relaxed)
}

/// The enrolled identity the simulated agents present, read from the files
/// `gantry-agent enroll` writes (as `AgentStateDirectory` reads them).
struct Identity {
    let name: String
    let tls: TLSConfiguration

    struct Metadata: Decodable {
        var name: String
    }

    init(stateDirectory path: String) throws {
        guard let data = FileManager.default.contents(atPath: path + "/agent.json") else {
            throw ValidationError("\(path)/agent.json is missing: enroll the simulated identity with `gantry-agent enroll --name sim --state \(path)`")
        }
        name = try JSONDecoder().decode(Metadata.self, from: data).name
        tls = try GantryTLS.agent(
            certificate: try CertificateEncoding.readCertificate(pemFile: path + "/agent.pem"),
            privateKey: try CertificateEncoding.readPrivateKey(pemFile: path + "/agent.key"),
            ca: try CertificateEncoding.readCertificate(pemFile: path + "/ca.pem"))
    }
}

func parseAddress(_ text: String) throws -> (String, Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
        throw ValidationError("'\(text)' is not HOST:PORT")
    }
    return (String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
}

func parseLabels(_ text: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for pair in text.split(separator: ",") {
        let parts = pair.split(separator: "=", maxSplits: 1)
        guard parts.count == 2 else { throw ValidationError("labels must be k=v,k=v, got '\(pair)'") }
        result[String(parts[0])] = String(parts[1])
    }
    return result
}

/// One line on stdout, flushed at once: the driver reads them from a file as they come.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
