import BenchKit
import Foundation

/// The cluster scenario's report (docs/benchmarks-cluster.md): coordinators sharing one
/// PostgreSQL database beside one on SQLite, and the machine's ceilings that bound them.
extension ReportWriter {
    func clusterMarkdown() -> String {
        var out = header().replacingOccurrences(
            of: "# Benchmarks\n", with: "# Benchmarks: several coordinators on PostgreSQL\n", options: .anchored)
        out += "The rest of the benchmarks are in [benchmarks.md](benchmarks.md), from their own run. "
            + "How the cluster works is in docs/operations.md, \"Several coordinators on PostgreSQL\".\n\n"
        guard let result = results.cluster else {
            let reason = results.failures["cluster"].map { "Not measured: the scenario failed (\($0.prefix(600)))." }
            return out + (reason ?? "Not measured in this run.") + "\n"
        }
        let c = result.ceilings
        let configurations = ClusterScenario.configurations
        func runs(_ name: String) -> [ClusterScenario.Run] { result.runs[name] ?? [] }
        func dispatch(_ name: String) -> Summary? { Summary(runs(name).flatMap(\.dispatch)) }
        func cycle(_ name: String) -> Summary? { Summary(runs(name).flatMap(\.cycle)) }
        func fromRequest(_ name: String) -> Summary? { Summary(runs(name).flatMap(\.fromRequest)) }
        func jobsPerSecond(_ name: String) -> Spread { Spread(runs(name).map(\.jobsPerSecond)) }
        func perJob(_ name: String, _ pick: (ClusterScenario.Run) -> Double?) -> Double? {
            let values = runs(name).compactMap { run in pick(run).map { $0 / Double(run.throughputJobs) * 1000 } }
            return values.isEmpty ? nil : Spread(values).median
        }

        out += "## This machine's ceilings\n\n"
        out += "A private PostgreSQL \(c.serverVersion) server started by the harness (`PostgresServer.startDurable`, the "
            + "tests' server code) on this machine's disk, with PostgreSQL's default durability: "
            + c.settings.map { "`\($0.0) = \($0.1)`" }.joined(separator: ", ")
            + ". It listens on a Unix socket, so a round trip crosses no network: a database on another host adds its "
            + "network round trip to every commit below.\n\n"
        out += "| ceiling | measured |\n|---|---|\n"
        out += "| the disk: `pg_test_fsync`, one 8 kB write then `\(c.fsyncMethod)` | "
            + "\(f0(c.fsyncPerSecond)) per second (\(ms(c.fsyncPerSecond.map { 1000 / $0 })) each) |\n"
        out += "| one single-row `INSERT` committed, 1 client (`pgbench -c 1`) | \(ms(c.commitLatency1)) "
            + "(\(f0(c.commitsPerSecond1)) commits/s) |\n"
        out += "| single-row `INSERT` commits, 8 clients (`pgbench -c 8`, the server's group commit) | "
            + "\(f0(c.commitsPerSecond8)) commits/s (\(ms(c.commitLatency8)) each) |\n"
        out += "| a round trip with nothing to flush (`SELECT 1`, 1 client) | \(ms(c.roundTrip, 3)) |\n"
        if let spawn = results.spawnCeiling {
            out += "| `sh -c true` spawned and reaped per second on all cores | \(f0(spawn)) |\n"
        }
        for note in c.notes { out += "\nNote: \(note)\n" }

        out += "\n## Dispatch latency and throughput\n\n"
        out += "Dispatch is the dispatch scenario's method (docs/benchmarks.md §1): \(result.dispatchJobs) sequential "
            + "one-step jobs (`date +%s%N`) after \(10) warm-up jobs, on \(result.dispatchAgents) idle agents; the "
            + "latency is the step's first instruction minus the `POST /v1/pipelines` response. Throughput is the "
            + "throughput scenario's (§2): \(result.throughputJobs) steps `true` in pipelines of 500 submitted back to "
            + "back, on \(result.throughputAgents) other agents, timed to the last job seen terminal (polled every "
            + "50 ms). Both on the same cluster, agents with default flags (per-job cgroups "
            + "\(runs(configurations[0].name).first?.cgroupMode ?? "unknown")). \(results.runs) run(s) per "
            + "configuration, interleaved; latencies pool every run's samples; jobs/s is the median of the runs. "
            + "CPU per job is during the throughput run: the leader's, the standbys' (relaying) and the PostgreSQL "
            + "server's (postmaster and backends).\n\n"
        out += "| configuration | leader | API via | agents via | dispatch median | p95 | p99 | request→start median | p95 | cycle median | "
            + "jobs/s (runs) | leader CPU/job | standbys CPU/job | PostgreSQL CPU/job |\n"
        out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for configuration in configurations {
            let name = configuration.name
            let d = dispatch(name)
            let rate = jobsPerSecond(name)
            let leaders = Set(runs(name).map { $0.leader.map(ClusterScenario.letter) ?? "A" }).sorted().joined(separator: ", ")
            let role: (Int) -> String = { index in
                configuration.coordinators == 1 ? "A" : "\(ClusterScenario.letter(index)) (\(index == 0 ? "leader" : "standby"))"
            }
            out += "| \(configuration.label) | \(configuration.postgres ? leaders : "A (alone)") | "
                + "\(role(configuration.apiVia)) | \(role(configuration.agentsVia)) | \(ms(d?.median)) | \(ms(d?.p95)) | "
                + "\(ms(d?.p99)) | \(ms(fromRequest(name)?.median)) | \(ms(fromRequest(name)?.p95)) | \(ms(cycle(name)?.median)) | \(f0(rate.median)) (\(rate.values.map { f0($0) }.joined(separator: ", "))) | "
                + "\(ms(perJob(name) { $0.leaderCPU }, 3)) | "
                + "\(configuration.coordinators > 1 ? ms(perJob(name) { $0.standbysCPU }, 3) : "—") | "
                + "\(ms(perJob(name) { $0.postgresCPU }, 3)) |\n"
        }
        out += "\nThe leader is the coordinator started first (A): it finds the lease free and takes it; each "
            + "coordinator's log was checked for \"leading the cluster\", and exactly one said it. With 2 coordinators "
            + "the API requests go to the leader and the agents dial only the standby B; with 3, the API requests go "
            + "to standby B and the agents dial only standby C, so both are relayed (the leader's own ports serve "
            + "nobody directly).\n\n"

        out += "## What bounds the cluster\n\n" + bounds(result) + "\n\n"
        out += """
            ## How to run

            ```sh
            scripts/benchmark --scenarios cluster --no-micro    # writes this file only
            ```

            It needs PostgreSQL's server binaries (`scripts/install-dependencies` installs them; or set
            `GANTRY_POSTGRES_BIN`). The harness starts its own server under /tmp (as the user `gantry-pg` when
            run as root) and stops it by its postmaster's pid at the end, also on Ctrl-C.

            """
        return out
    }

    /// The paragraphs on what bounds the cluster, from this run's figures.
    private func bounds(_ result: ClusterScenario.Result) -> String {
        let c = result.ceilings
        func runs(_ name: String) -> [ClusterScenario.Run] { result.runs[name] ?? [] }
        // Request → first instruction: the API audits each call after its handler (the leases
        // are out by then) and before answering, and on PostgreSQL that audit record is a
        // commit of its own, so response → start would flatter it.
        func median(_ name: String) -> Double? { Summary(runs(name).flatMap(\.fromRequest))?.median }
        func rate(_ name: String) -> Double? {
            let values = runs(name).map(\.jobsPerSecond)
            return values.isEmpty ? nil : Spread(values).median
        }
        func perJob(_ name: String, _ pick: (ClusterScenario.Run) -> Double?) -> Double? {
            let values = runs(name).compactMap { run in pick(run).map { $0 / Double(run.throughputJobs) * 1000 } }
            return values.isEmpty ? nil : Spread(values).median
        }
        func delta(_ a: Double?, _ b: Double?) -> String {
            guard let a, let b else { return "—" }
            return String(format: "%+.2f ms", a - b)
        }
        func times(_ a: Double?, _ b: Double?) -> String {
            guard let a, let b, b > 0 else { return "—" }
            return String(format: "%.1f", a / b)
        }
        let sqlite = median("sqlite-1")
        let pg1 = median("postgres-1")
        let pg2 = median("postgres-2")
        let pg3 = median("postgres-3")
        let leaderSQLite = perJob("sqlite-1") { $0.leaderCPU }
        let leaderPG = perJob("postgres-1") { $0.leaderCPU }
        let server = perJob("postgres-1") { $0.postgresCPU }
        let writerPerJob = rate("postgres-1").map { 1000 / $0 }
        var text = "**The leader's single writer.** Only the leader runs the lifecycle, and it commits on one writer "
            + "(the `CoordinatorCore` actor, group-committing the events that wait for it). On PostgreSQL a lifecycle "
            + "commit is a transaction of several statements, each a round trip (`BEGIN`, the fence check that locks "
            + "the lease row `FOR SHARE`, the writes, then `COMMIT`, which waits for the WAL to be flushed). Here a "
            + "bare round trip costs \(ms(c.roundTrip, 3)) (a Unix socket), a single-row `INSERT` commit "
            + "\(ms(c.commitLatency1)) and the disk's `\(c.fsyncMethod)` \(ms(c.fsyncPerSecond.map { 1000 / $0 })): "
            + "a round trip is cheap next to the flush. Yet PostgreSQL moved the request→start median "
            + "by \(delta(pg1, sqlite)) against SQLite (\(ms(pg1)) against \(ms(sqlite))), "
            + "\(times(pg1.flatMap { a in sqlite.map { a - $0 } }, c.commitLatency1)) single-row commits' worth, and "
            + "in the throughput run the leader spent \(ms(leaderPG, 3)) of CPU per job against \(ms(leaderSQLite, 3)) "
            + "on SQLite, with the PostgreSQL server spending \(ms(server, 3)) more. At \(f0(rate("postgres-1"))) "
            + "jobs/s the writer has \(ms(writerPerJob)) per job for the few commits a job takes (its lease, its log, "
            + "its result; its pipeline's insert is shared by 500 jobs), "
            + "\(times(writerPerJob, c.commitLatency1)) single-row commits' worth, while PostgreSQL itself commits "
            + "\(f0(c.commitsPerSecond8)) single-row transactions per second from 8 clients (\(f0(c.commitsPerSecond1)) "
            + "from one). So with a local database what bounds the cluster is the leader's one writer and the CPU "
            + "each statement costs on both sides of the round trip (encoding, decoding, the executor's thread hops, "
            + "the server's parsing and locking), more than the flush; with a database across a network each "
            + "statement adds that network's round trip as well, and the writer's time per job grows by several of "
            + "them. Every process here (the coordinators, PostgreSQL, the agents and their steps, this driver) shares "
            + "\(results.machine.cores) cores, with whatever else ran on them (the load average above): the figures "
            + "are the whole system's.\n\n"
        text += "**Standbys add a relay hop.** A standby copies bytes at TCP level to the leader, one more process "
            + "and one more loopback connection each way: agents behind a standby moved the request→start median by "
            + "\(delta(pg2, pg1)) (2 coordinators against 1), and the API behind the other standby as well by "
            + "\(delta(pg3, pg2)) more (3 against 2); the standbys spent \(ms(perJob("postgres-2") { $0.standbysCPU }, 3)) "
            + "(one, relaying the agents) and \(ms(perJob("postgres-3") { $0.standbysCPU }, 3)) (two, relaying the "
            + "agents and the API) of CPU per job. Throughput was \(f0(rate("postgres-1"))), \(f0(rate("postgres-2"))) "
            + "and \(f0(rate("postgres-3"))) jobs/s with 1, 2 and 3 coordinators (\(f0(rate("sqlite-1"))) on SQLite): "
            + "differences of the size of the spread between runs on this machine.\n\n"
        text += "**More coordinators add availability, not throughput.** Whatever comes in through a standby is "
            + "committed by the same leader on the same writer, one database round trip per statement, so a second "
            + "or third coordinator buys a standby that takes over within the leader lease's TTL, and more places to "
            + "accept connections, not more scheduling."
        return text
    }

    private func ms(_ value: Double?, _ digits: Int = 2) -> String {
        guard let value, value.isFinite else { return "—" }
        return String(format: "%.\(digits)f ms", value)
    }

    private func f0(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "—" }
        return String(format: "%.0f", value)
    }
}
