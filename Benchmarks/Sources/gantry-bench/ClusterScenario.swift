import BenchKit
import Foundation
import GantryTestPostgres

/// Several coordinators on one PostgreSQL database (docs/operations.md, "Several
/// coordinators on PostgreSQL"): dispatch latency and throughput by the dispatch and
/// throughput scenarios' methods, for SQLite with one coordinator (the baseline) and
/// PostgreSQL with 1, 2 and 3 coordinators.
///
/// PostgreSQL is a private server of the harness's own (`PostgresServer.startDurable`, the
/// tests' server code) with PostgreSQL's default durability: fsync and synchronous_commit
/// on, so a commit waits for the WAL to reach this disk as it would in production. Each
/// cluster gets a fresh database on it. Before the clusters, the scenario measures what
/// bounds them on this machine: the disk's fdatasync (`pg_test_fsync`), a single-row
/// INSERT commit through the server (`pgbench`, 1 and 8 clients) and a bare round trip
/// (`SELECT 1`).
///
/// With 2 and 3 coordinators the first one started leads (it takes the free lease at
/// once; the report names the one whose log says "leading the cluster") and the agents
/// dial only a standby, so every lease and every result crosses the standby's relay. With
/// 2, the API requests go to the leader; with 3, to the other standby, so both the API and
/// the agents are relayed.
struct ClusterScenario {
    struct Configuration: Sendable {
        var name: String
        var label: String
        var postgres: Bool
        var coordinators: Int
        /// The coordinator (0 = the first started) the API requests go to.
        var apiVia: Int
        /// The coordinator the agents dial (enroll and run).
        var agentsVia: Int
    }

    static let configurations = [
        Configuration(name: "sqlite-1", label: "SQLite, 1 coordinator", postgres: false, coordinators: 1, apiVia: 0, agentsVia: 0),
        Configuration(name: "postgres-1", label: "PostgreSQL, 1 coordinator", postgres: true, coordinators: 1, apiVia: 0, agentsVia: 0),
        Configuration(name: "postgres-2", label: "PostgreSQL, 2 coordinators", postgres: true, coordinators: 2, apiVia: 0, agentsVia: 1),
        Configuration(name: "postgres-3", label: "PostgreSQL, 3 coordinators", postgres: true, coordinators: 3, apiVia: 1, agentsVia: 2),
    ]

    static func letter(_ index: Int) -> String { String(UnicodeScalar(UInt8(65 + index))) }

    struct Run {
        var index: Int
        /// The coordinator whose log says "leading the cluster" (nil on SQLite).
        var leader: Int?
        var cgroupMode: String
        /// Response received → first instruction, ms (the dispatch scenario's figure).
        var dispatch: [Double]
        /// Request sent → first instruction, ms: the figure that does not flatter a back end
        /// whose API answers later after the lease went out (on PostgreSQL the request's
        /// audit record, written before the answer, is a commit of its own).
        var fromRequest: [Double]
        /// Submit → job seen finished, ms.
        var cycle: [Double]
        var throughputJobs: Int
        var throughputSeconds: Double
        var submitMilliseconds: Double
        /// CPU seconds during the throughput run.
        var leaderCPU: Double
        var standbysCPU: Double
        var postgresCPU: Double?
        var jobsPerSecond: Double { Double(throughputJobs) / throughputSeconds }
    }

    /// What bounds the cluster on this machine, measured on the same server before the clusters.
    struct Ceilings {
        var serverVersion = ""
        /// `SHOW fsync`, `synchronous_commit`, `full_page_writes`, `wal_sync_method`.
        var settings: [(String, String)] = []
        /// pg_test_fsync, one 8 kB write then the server's sync method, ops/s.
        var fsyncMethod = ""
        var fsyncPerSecond: Double?
        /// pgbench, one single-row INSERT per transaction (autocommit).
        var commitLatency1: Double?
        var commitsPerSecond1: Double?
        var commitLatency8: Double?
        var commitsPerSecond8: Double?
        /// pgbench, `SELECT 1`: a round trip with no commit to flush.
        var roundTrip: Double?
        var notes: [String] = []
    }

    struct Result {
        var ceilings: Ceilings
        var runs: [String: [Run]]
        var dispatchJobs: Int
        var throughputJobs: Int
        var dispatchAgents: Int
        var throughputAgents: Int
    }

    let context: BenchContext
    var dispatchAgents: Int { 4 }
    var throughputAgents: Int { 8 }
    var dispatchJobs: Int { context.quick ? 60 : 500 }
    var warmup: Int { 10 }
    var throughputJobs: Int { context.quick ? 200 : 2000 }

    func run() async throws -> Result {
        let server = try PostgresServer.startDurable()
        ChildRegistry.shared.addExternal(pid: server.postmasterPID, stopSignal: SIGINT)
        defer {
            server.stop()
            ChildRegistry.shared.removeExternal(pid: server.postmasterPID)
        }
        context.log("  PostgreSQL (durability on) at \(server.socketDirectory), postmaster pid \(server.postmasterPID)")
        let ceilings = try measureCeilings(server)
        var result = Result(
            ceilings: ceilings, runs: [:], dispatchJobs: dispatchJobs, throughputJobs: throughputJobs,
            dispatchAgents: dispatchAgents, throughputAgents: throughputAgents)
        // Runs interleave the configurations, so a slow minute on this shared machine
        // spreads over all of them instead of landing on one.
        for index in 1...context.runs {
            for configuration in Self.configurations {
                let run = try await measure(configuration, index: index, server: server)
                result.runs[configuration.name, default: []].append(run)
            }
        }
        return result
    }

    // MARK: - One cluster

    private func measure(_ configuration: Configuration, index: Int, server: PostgresServer) async throws -> Run {
        let cluster = try Cluster(
            name: "cluster-\(configuration.name)-\(index)", binaries: context.binaries, workDir: context.workDir)
        defer { cluster.tearDown() }
        do {
            var addresses: [(agents: String, http: String)] = []
            var logs: [String] = [cluster.root + "/coordinator.log"]
            if configuration.postgres {
                let database = try server.makeDatabase()
                try cluster.startCoordinator(initArguments: ["--database", database])
            } else {
                try cluster.startCoordinator()
            }
            addresses.append((cluster.agentsAddress, cluster.httpAddress))
            // The others on copies of the first one's state (CA, certificate, keys, the
            // database URL `init` recorded), as docs/operations.md says to set them up.
            for n in 1..<configuration.coordinators {
                let name = Self.letter(n).lowercased()
                let state = cluster.root + "/coordinator-\(name)"
                try FileManager.default.copyItem(atPath: cluster.coordinatorState, toPath: state)
                let process = try ChildProcess.spawn(
                    name: "coordinator \(Self.letter(n))", executable: context.binaries + "/gantry-coordinator",
                    arguments: ["serve", "--state", state, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]
                        + Cluster.loopbackFleetLimits,
                    stdout: cluster.root + "/coordinator-\(name).out", stderr: cluster.root + "/coordinator-\(name).log")
                cluster.otherCoordinators.append(process)
                logs.append(process.stderrPath)
                let line = try process.waitForLine(containing: Cluster.listeningLine, in: process.stdoutPath, timeout: .seconds(60))
                addresses.append(try Self.addresses(line))
            }
            let pids = [try cluster.coordinatorPID] + cluster.otherCoordinators.map(\.pid)
            let leader = try configuration.postgres ? Self.leader(logs: logs) : nil
            if configuration.postgres, leader == nil { throw HarnessError("no coordinator says it leads the cluster") }
            let leaderIndex = leader ?? 0
            if configuration.agentsVia != 0 { cluster.agentCoordinator = addresses[configuration.agentsVia].agents }
            let admin = try cluster.client
            let api = APIClient(base: "http://\(addresses[configuration.apiVia].http)", token: admin.token)
            let dispatchProcesses = try cluster.startAgents(
                count: dispatchAgents, labels: "pool=cluster-dispatch", cgroups: true, slotPrefix: "d")
            _ = try cluster.startAgents(
                count: throughputAgents, labels: "pool=cluster-throughput", cgroups: true, slotPrefix: "t")
            context.log(
                "  \(configuration.label), run \(index): leader \(leader.map(Self.letter) ?? "A"), API via "
                    + "\(Self.letter(configuration.apiVia)) (\(addresses[configuration.apiVia].http)), agents via "
                    + "\(Self.letter(configuration.agentsVia)) (\(addresses[configuration.agentsVia].agents))")

            let samples = try await DispatchScenario.measure(
                api: api, jobs: dispatchJobs, warmup: warmup, selector: "pool: cluster-dispatch")
            let dispatch = try summary(samples.fromResponse)

            // Let every throughput agent's Ready land before the clock starts, as the throughput scenario does.
            try await Task.sleep(for: .milliseconds(500))
            let cpuBefore = pids.map { ProcessStats.cpuSeconds(pid: $0) ?? 0 }
            let postgresBefore = configuration.postgres ? Self.postgresCPUSeconds(postmaster: server.postmasterPID) : nil
            let timing = try await ThroughputScenario.runJobs(api: api, jobs: throughputJobs, pool: "cluster-throughput")
            let cpu = zip(pids, cpuBefore).map { (ProcessStats.cpuSeconds(pid: $0) ?? 0) - $1 }
            let postgresCPU = postgresBefore.map { Self.postgresCPUSeconds(postmaster: server.postmasterPID) - $0 }
            try await ThroughputScenario.verify(api: api, pipelines: timing.pipelines, jobs: throughputJobs)
            let run = Run(
                index: index, leader: leader, cgroupMode: Cluster.cgroupMode(of: dispatchProcesses[0]), dispatch: samples.fromResponse,
                fromRequest: samples.fromRequest, cycle: samples.cycle, throughputJobs: throughputJobs, throughputSeconds: timing.seconds,
                submitMilliseconds: timing.submitMilliseconds, leaderCPU: cpu[leaderIndex],
                standbysCPU: cpu.enumerated().filter { $0.offset != leaderIndex }.map(\.element).reduce(0, +),
                postgresCPU: postgresCPU)
            context.log(
                "    dispatch response→start median \(ms(dispatch.median)) p95 \(ms(dispatch.p95)) p99 \(ms(dispatch.p99)); "
                    + "request→start median \(ms(try summary(samples.fromRequest).median)); "
                    + "throughput \(String(format: "%.0f", run.jobsPerSecond)) jobs/s on \(throughputAgents) agents; CPU/job "
                    + "leader \(String(format: "%.3f", run.leaderCPU / Double(throughputJobs) * 1000)) ms, standbys "
                    + "\(String(format: "%.3f", run.standbysCPU / Double(throughputJobs) * 1000)) ms, PostgreSQL "
                    + (postgresCPU.map { String(format: "%.3f ms", $0 / Double(throughputJobs) * 1000) } ?? "—"))
            return run
        } catch {
            var text = cluster.diagnostics()
            for other in cluster.otherCoordinators {
                text += "\n--- \(other.name) ---\n" + ChildProcess.tail(of: other.stderrPath)
            }
            throw HarnessError("cluster \(configuration.name) run \(index) failed: \(error)\n\(text)")
        }
    }

    static func addresses(_ line: String) throws -> (agents: String, http: String) {
        var agents = ""
        var http = ""
        for field in line.split(separator: " ") {
            if field.hasPrefix("agents=") { agents = String(field.dropFirst("agents=".count)) }
            if field.hasPrefix("http=") { http = String(field.dropFirst("http=".count)) }
        }
        guard agents.hasPrefix("127.0.0.1:"), http.hasPrefix("127.0.0.1:") else {
            throw HarnessError("unexpected listening line: \(line)")
        }
        return (agents, http)
    }

    /// The coordinator whose log says it leads (`ClusterMember`'s "leading the cluster").
    static func leader(logs: [String]) throws -> Int? {
        let leading = logs.enumerated().filter { _, path in
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").contains("leading the cluster")
        }
        guard leading.count <= 1 else {
            throw HarnessError("\(leading.count) coordinators say they lead: \(leading.map { letter($0.offset) })")
        }
        return leading.first?.offset
    }

    /// CPU seconds of the PostgreSQL server: the postmaster, its live children (backends,
    /// WAL writer, checkpointer…) and the children it has reaped (backends that ended).
    static func postgresCPUSeconds(postmaster: pid_t) -> Double {
        var total = (ProcessStats.cpuSeconds(pid: postmaster) ?? 0) + (ProcessStats.childrenCPUSeconds(pid: postmaster) ?? 0)
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let stat = ProcessStats.readProcFile("/proc/\(pid)/stat"),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // After "pid (comm)": state, ppid, …
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, pid_t(fields[1]) == postmaster else { continue }
            total += ProcessStats.cpuSeconds(pid: pid) ?? 0
        }
        return total
    }

    // MARK: - Ceilings

    private func measureCeilings(_ server: PostgresServer) throws -> Ceilings {
        var ceilings = Ceilings()
        let url = try server.makeDatabase()
        let database = String(url.dropFirst("postgres:///".count).prefix { $0 != "?" })
        let scratch = context.workDir + "/cluster-ceilings"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let connection = ["-h", server.socketDirectory, "-U", PostgresServer.user]
        func psql(_ sql: String) throws -> String {
            let result = try runCommand(
                server.bin + "/psql", connection + ["-d", database, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                workDir: scratch)
            guard result.status == 0 else { throw HarnessError("psql -c \(sql) failed: \(result.output)") }
            return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        ceilings.serverVersion = try psql("SHOW server_version")
        for name in ["fsync", "synchronous_commit", "full_page_writes", "wal_sync_method"] {
            ceilings.settings.append((name, try psql("SHOW \(name)")))
        }
        guard ceilings.settings.first(where: { $0.0 == "fsync" })?.1 == "on",
            ceilings.settings.first(where: { $0.0 == "synchronous_commit" })?.1 == "on"
        else { throw HarnessError("the benchmark's PostgreSQL server runs without durability: \(ceilings.settings)") }
        _ = try psql("CREATE TABLE commit_probe (id bigserial PRIMARY KEY, payload text NOT NULL)")
        let insert = scratch + "/insert.sql"
        let select = scratch + "/select.sql"
        try "INSERT INTO commit_probe (payload) VALUES ('x');\n".write(toFile: insert, atomically: true, encoding: .utf8)
        try "SELECT 1;\n".write(toFile: select, atomically: true, encoding: .utf8)
        func pgbench(_ script: String, clients: Int, seconds: Int) throws -> (latency: Double?, tps: Double?) {
            let result = try runCommand(
                server.bin + "/pgbench",
                connection + ["-n", "-f", script, "-c", "\(clients)", "-j", "\(min(clients, 2))", "-T", "\(seconds)", database],
                workDir: scratch, timeout: .seconds(Double(seconds) + 60))
            guard result.status == 0 else { throw HarnessError("pgbench failed: \(result.output)") }
            return (Self.number(after: "latency average = ", in: result.output), Self.number(after: "tps = ", in: result.output))
        }
        let one = try pgbench(insert, clients: 1, seconds: 5)
        ceilings.commitLatency1 = one.latency
        ceilings.commitsPerSecond1 = one.tps
        let eight = try pgbench(insert, clients: 8, seconds: 5)
        ceilings.commitLatency8 = eight.latency
        ceilings.commitsPerSecond8 = eight.tps
        ceilings.roundTrip = try pgbench(select, clients: 1, seconds: 3).latency
        context.log(
            "  PostgreSQL \(ceilings.serverVersion) \(ceilings.settings.map { "\($0.0)=\($0.1)" }.joined(separator: " ")): "
                + "single-row INSERT commit \(Self.format(ceilings.commitLatency1)) ms (1 client, "
                + "\(Self.format(ceilings.commitsPerSecond1, 0))/s), \(Self.format(ceilings.commitsPerSecond8, 0)) commits/s "
                + "with 8 clients; SELECT 1 round trip \(Self.format(ceilings.roundTrip, 3)) ms")
        // The disk itself: pg_test_fsync writes its file next to the server's data.
        ceilings.fsyncMethod = ceilings.settings.first(where: { $0.0 == "wal_sync_method" })?.1 ?? "fdatasync"
        let fsync = try runCommand(
            server.bin + "/pg_test_fsync", ["-s", "1", "-f", server.directory + "/pg_test_fsync.out"], workDir: scratch,
            timeout: .seconds(120))
        unlink(server.directory + "/pg_test_fsync.out")
        if fsync.status == 0 {
            // "Compare file sync methods using one 8kB write:" … "        fdatasync   1234.567 ops/sec   810 usecs/op"
            let section = fsync.output.components(separatedBy: "using one 8kB write").dropFirst().first ?? ""
            let line = section.split(separator: "\n").first {
                $0.trimmingCharacters(in: .whitespaces).hasPrefix(ceilings.fsyncMethod + " ") && $0.contains("ops/sec")
            }
            ceilings.fsyncPerSecond = line.flatMap { Self.number(before: " ops/sec", in: String($0)) }
            context.log("  pg_test_fsync: \(ceilings.fsyncMethod) of one 8 kB write \(Self.format(ceilings.fsyncPerSecond, 0)) ops/s")
        } else {
            ceilings.notes.append("pg_test_fsync failed: \(fsync.output.suffix(300))")
        }
        return ceilings
    }

    /// The number right after `marker` in `text` ("tps = 426.1 (without…" → 426.1).
    static func number(after marker: String, in text: String) -> Double? {
        guard let range = text.range(of: marker) else { return nil }
        return Double(text[range.upperBound...].prefix { $0.isNumber || $0 == "." })
    }

    /// The number right before `marker` ("  1234.567 ops/sec" → 1234.567).
    static func number(before marker: String, in text: String) -> Double? {
        guard let range = text.range(of: marker) else { return nil }
        return Double(String(text[..<range.lowerBound].reversed().prefix { $0.isNumber || $0 == "." }.reversed()))
    }

    static func format(_ value: Double?, _ digits: Int = 2) -> String {
        guard let value, value.isFinite else { return "—" }
        return String(format: "%.\(digits)f", value)
    }
}
