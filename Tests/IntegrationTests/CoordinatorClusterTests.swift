import Foundation
import GantryProtocol
import GantryTestPostgres
import Subprocess
import Testing

/// Several coordinators on one PostgreSQL database, with the real binaries: one leads (runs
/// the lifecycle), the others relay agents and API clients to it, and one of them takes
/// over when the leader dies.
@Suite("Coordinators sharing PostgreSQL", .serialized, .timeLimit(.minutes(5)))
struct CoordinatorClusterTests {
    /// Short, so a takeover is quick: the leader lease (2 s) and the agents' lease (3 s).
    static let arguments = ["--heartbeat-interval", "0.5", "--lease-ttl", "3", "--leader-ttl", "2"]

    /// A cluster whose first coordinator (A, which leads) is started on a fresh database,
    /// and a second (B) on a copy of its state directory, standing by.
    static func withTwoCoordinators(_ name: String, _ body: (TestCluster, ChildProcess, (agents: String, http: String)) async throws -> Void)
        async throws
    {
        let cluster = try TestCluster(name: name)
        defer { cluster.removeFiles() }
        var standby: ChildProcess?
        do {
            let database = try PostgresServer.shared.get().makeDatabase()
            let initialize = try await Subprocess.run(
                .path(.init(cluster.binaries + "/gantry-coordinator")),
                arguments: ["init", "--state", cluster.coordinatorState, "--advertise", "127.0.0.1:0", "--database", database],
                output: .string(limit: 65536), error: .string(limit: 65536))
            guard initialize.terminationStatus.isSuccess else { throw TimedOut(description: "init failed: \(initialize.standardError)") }
            try await cluster.startCoordinator(extraArguments: arguments)
            // B shares everything A has: CA, server certificate, keys and the database URL.
            let stateB = cluster.root + "/coordinator-b"
            try FileManager.default.copyItem(atPath: cluster.coordinatorState, toPath: stateB)
            let b = try await ChildProcess(
                name: "coordinator-b", executable: cluster.binaries + "/gantry-coordinator",
                arguments: ["serve", "--state", stateB, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--handshake-timeout", "30"] + arguments,
                logFile: cluster.root + "/coordinator-b.log")
            standby = b
            let line = try await b.waitForLine(containing: "gantry-coordinator listening")
            var addresses = (agents: "", http: "")
            for field in line.split(separator: " ") {
                if field.hasPrefix("agents=") { addresses.agents = String(field.dropFirst("agents=".count)) }
                if field.hasPrefix("http=") { addresses.http = String(field.dropFirst("http=".count)) }
            }
            try await body(cluster, b, addresses)
        } catch {
            var logs = "\n--- coordinator A ---\n\(cluster.coordinator?.output.suffix(4000) ?? "")"
            logs += "\n--- coordinator B ---\n\(standby?.output.suffix(4000) ?? "")"
            for agent in cluster.agents { logs += "\n--- \(agent.name) ---\n\(agent.output.suffix(2500))" }
            Issue.record("\(error)\(logs)")
        }
        await standby?.stop()
        await cluster.shutdown()
    }

    @Test func aJobSubmittedToOneCoordinatorRunsOnAnAgentOfAnother() async throws {
        try await Self.withTwoCoordinators("cluster-relay") { cluster, _, b in
            // The agent dials only B; the job goes in through A's API.
            try await cluster.startAgent(slot: "1", coordinator: b.agents)
            let pipeline = try await cluster.submit("steps:\n  - key: hello\n    command: echo hello from the agent of B\n")
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "succeeded")
            #expect(String(decoding: try await cluster.log(done.jobs[0].id), as: UTF8.self) == "hello from the agent of B\n")
            // And B's API answers the same, relayed to the leader.
            cluster.useAPI(at: b.http)
            #expect(try await cluster.pipeline(pipeline.id).state == "succeeded")
            #expect(String(decoding: try await cluster.log(done.jobs[0].id), as: UTF8.self) == "hello from the agent of B\n")
        }
    }

    @Test func killingTheLeaderMidJobMovesItsAgentsToTheOtherWithExactLogsAndOneRun() async throws {
        try await Self.withTwoCoordinators("cluster-failover") { cluster, _, b in
            let runs = cluster.root + "/runs"
            // Both addresses, A first: the agents move to B when A dies.
            try await cluster.startAgent(slot: "1", coordinator: "\(cluster.agentAddress),\(b.agents)")
            try await cluster.startAgent(slot: "2", coordinator: "\(cluster.agentAddress),\(b.agents)")
            let pipeline = try await cluster.submit(
                "steps:\n" + FailureContainmentTests.tickingStep(key: "a", lines: 40, interval: "0.05", runs: runs)
                    + FailureContainmentTests.tickingStep(key: "b", lines: 10, interval: "0.02", runs: runs, extra: "    depends_on: a\n"))
            try await cluster.waitForJob(pipeline.jobs[0].id, "half way") { $0.logBytes > 600 }
            try await cluster.killCoordinator()
            let killed = ContinuousClock.now
            cluster.useAPI(at: b.http)
            // Until B takes the lease (at most the 2 s leader TTL and one poll), B relays
            // to the dead leader and its connections are closed: clients retry, as the CLI does.
            try await waitUntil("B answers as the leader", timeout: .seconds(30)) {
                (try? await cluster.request(.GET, "/healthz"))?.0 == 200
            }
            #expect(ContinuousClock.now - killed < .seconds(10), "the standby took over within the leader TTL and a poll")
            let done = try await cluster.waitForPipeline(pipeline.id, timeout: .seconds(90))
            #expect(done.state == "succeeded")
            #expect(done.jobs.map(\.attempt) == [1, 1], "no job was run twice")
            #expect(FailureContainmentTests.runs(runs).count == 2)
            #expect(
                FailureContainmentTests.sha(try await cluster.log(done.jobs[0].id))
                    == FailureContainmentTests.sha(FailureContainmentTests.expectedTicks(40)))
            #expect(
                FailureContainmentTests.sha(try await cluster.log(done.jobs[1].id))
                    == FailureContainmentTests.sha(FailureContainmentTests.expectedTicks(10)))
            for job in done.jobs {
                #expect(try await cluster.attempts(job.id).map(\.state) == ["succeeded"])
            }
        }
    }
}
