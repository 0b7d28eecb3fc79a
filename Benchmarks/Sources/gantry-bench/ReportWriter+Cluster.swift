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
        out += "| configuration | leader | API via | agents via | dispatch median | p95 | p99 | cycle median | "
            + "jobs/s (runs) | leader CPU/job | standbys CPU/job | PostgreSQL CPU/job |\n"
        out += "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
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
                + "\(ms(d?.p99)) | \(ms(cycle(name)?.median)) | \(f0(rate.median)) (\(rate.values.map { f0($0) }.joined(separator: ", "))) | "
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

    /// The paragraph on what bounds the cluster, from this run's figures.
    private func bounds(_ result: ClusterScenario.Result) -> String {
        let c = result.ceilings
        func runs(_ name: String) -> [ClusterScenario.Run] { result.runs[name] ?? [] }
        func median(_ name: String) -> Double? { Summary(runs(name).flatMap(\.dispatch))?.median }
        func rate(_ name: String) -> Double? {
            let values = runs(name).map(\.jobsPerSecond)
            return values.isEmpty ? nil : Spread(values).median
        }
        let sqlite = median("sqlite-1")
        let pg1 = median("postgres-1")
        let pg2 = median("postgres-2")
        let pg3 = median("postgres-3")
        func delta(_ a: Double?, _ b: Double?) -> String {
            guard let a, let b else { return "—" }
            return String(format: "%+.2f ms", a - b)
        }
        var text = "Only the leader runs the lifecycle, and it commits on one writer (the `CoordinatorCore` actor, "
            + "group-committing the events that wait for it); every commit is at least one round trip to PostgreSQL "
            + "and one flush of its WAL to this disk: \(ms(c.commitLatency1)) for a single-row `INSERT` here, of which "
            + "\(ms(c.roundTrip, 3)) is the round trip itself and the rest the flush (the disk does "
            + "\(f0(c.fsyncPerSecond)) `\(c.fsyncMethod)`s per second). "
        text += "Between the API's answer and the step's first instruction the leader commits the lease before it "
            + "sends it, so PostgreSQL with one coordinator moves the dispatch median by \(delta(pg1, sqlite)) against "
            + "SQLite (\(ms(pg1)) against \(ms(sqlite))), about one such commit. "
        text += "A standby adds a relay hop, a TCP copy through one more process each way: agents behind a standby "
            + "moved the median by \(delta(pg2, pg1)) (2 coordinators against 1), and the API behind the other standby "
            + "as well by \(delta(pg3, pg2)) more (3 against 2). "
        text += "Throughput follows the same single writer: \(f0(rate("sqlite-1"))) jobs/s on SQLite, "
            + "\(f0(rate("postgres-1"))), \(f0(rate("postgres-2"))) and \(f0(rate("postgres-3"))) jobs/s on "
            + "PostgreSQL with 1, 2 and 3 coordinators on \(result.throughputAgents) agents, against "
            + "\(f0(c.commitsPerSecond8)) single-row commits/s from 8 clients (the server's group commit) and "
            + "\(f0(c.commitsPerSecond1))/s from one. A job takes several commits (its lease, its log, its result; the "
            + "writer batches those that wait together), and every process here (the coordinators, PostgreSQL, the "
            + "agents and their steps) shares \(results.machine.cores) cores, so the jobs/s are the whole system's. "
        text += "More coordinators add availability (a standby takes over within the leader lease's TTL) and "
            + "connection capacity, not throughput: the standbys only copy bytes, and whatever comes in through "
            + "them is committed by the same leader, one database round trip per commit."
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
