import BenchKit
import Foundation

/// Scenario 4: fleet size. One coordinator, one real agent, and N simulated agents from
/// `gantry-fleet` (real mutual TLS 1.3, Hello/Welcome, Ready, heartbeats at the interval
/// the Welcome announces: the coordinator's default, 5 s).
///
/// Measured per N: the time to connect the fleet; coordinator RSS per connected agent
/// (RSS with the fleet, settled for two heartbeat intervals, minus RSS with only the real
/// agent, over N); coordinator CPU per heartbeat and in cores over a fixed window while
/// the fleet idles (it includes everything the coordinator does meanwhile, e.g. its
/// 250 ms liveness tick over all agents); and dispatch latency to the real agent while
/// the fleet is connected. The simulated agents carry `pool=sim`; the jobs select
/// `pool=real`, so only the real agent gets them.
struct FleetScenario {
    struct Run {
        var index: Int
        var agents: Int
        var welcomed: Int
        var connectFailures: Int
        var connectSeconds: Double
        var rssBefore: Int
        var rssAfter: Int
        var coordinatorFDs: Int
        var windowSeconds: Double
        var windowCPU: Double
        var heartbeats: Int
        var dispatchIdle: Summary
        var dispatchWithFleet: Summary
        var fleetRSS: Int
        var firstError: String?
        var rssPerAgent: Double { Double(rssAfter - rssBefore) / Double(max(welcomed, 1)) }
        var cores: Double { windowCPU / windowSeconds }
        var cpuPerHeartbeat: Double { windowCPU / Double(max(heartbeats, 1)) }
        var heartbeatsPerSecond: Double { Double(heartbeats) / windowSeconds }
    }

    let context: BenchContext
    var sizes: [Int] { context.quick ? [200, 1000] : [1000, 10_000] }
    var window: Duration { context.quick ? .seconds(10) : .seconds(30) }
    var dispatchJobs: Int { context.quick ? 20 : 100 }
    /// Two of the coordinator's default 5 s heartbeat intervals.
    static let settle: Duration = .seconds(10)

    func run(size: Int) async throws -> [Run] {
        var runs: [Run] = []
        for index in 1...context.runs {
            let cluster = try Cluster(name: "fleet-\(size)-\(index)", binaries: context.binaries, workDir: context.workDir)
            var fleet: ChildProcess?
            defer {
                fleet?.stop(grace: .seconds(5))
                cluster.tearDown()
            }
            do {
                try cluster.startCoordinator()
                try cluster.startAgents(count: 1, labels: "pool=real", cgroups: true)
                let simState = try cluster.enroll(name: "sim")
                let coordinator = try cluster.coordinatorPID
                let api = try cluster.client
                try await Task.sleep(for: .seconds(2))
                let rssBefore = ProcessStats.residentBytes(pid: coordinator) ?? 0
                let idle = try await DispatchScenario.measure(
                    api: api, jobs: dispatchJobs, warmup: 5, selector: "pool: real")

                let out = cluster.root + "/fleet.out"
                let started = try ChildProcess.spawn(
                    name: "gantry-fleet", executable: context.fleetBinary,
                    arguments: [
                        "--coordinator", cluster.agentsAddress, "--state", simState, "--count", "\(size)", "--labels",
                        "pool=sim", "--duration", "1800",
                    ],
                    stdout: out, stderr: cluster.root + "/fleet.err")
                fleet = started
                let ready = try started.waitForLine(containing: "fleet ready", in: out, timeout: .seconds(900))
                let fields = Self.fields(ready)
                let welcomed = Int(fields["welcomed"] ?? "") ?? 0
                let failures = Int(fields["connect_failures"] ?? "") ?? 0
                context.log(
                    "  run \(index): \(welcomed) of \(size) simulated agents connected in \(fields["elapsed"] ?? "?") s"
                        + (failures > 0 ? " (\(failures) failed: \(fields["first_error"] ?? ""))" : ""))
                try await Task.sleep(for: Self.settle)
                let rssAfter = ProcessStats.residentBytes(pid: coordinator) ?? 0
                let fds = ProcessStats.openFileCount(pid: coordinator) ?? 0

                let (acks0, cpu0, t0) = try waitForStatus(out: out, fleet: started, coordinator: coordinator)
                try await Task.sleep(for: window - .milliseconds(500))
                let (acks1, cpu1, t1) = try waitForStatus(out: out, fleet: started, coordinator: coordinator)
                let withFleet = try await DispatchScenario.measure(
                    api: api, jobs: dispatchJobs, warmup: 5, selector: "pool: real")
                let run = Run(
                    index: index, agents: size, welcomed: welcomed, connectFailures: failures,
                    connectSeconds: Double(fields["elapsed"] ?? "") ?? .nan, rssBefore: rssBefore, rssAfter: rssAfter,
                    coordinatorFDs: fds, windowSeconds: (t1 - t0).seconds, windowCPU: cpu1 - cpu0,
                    heartbeats: acks1 - acks0, dispatchIdle: try summary(idle.fromResponse),
                    dispatchWithFleet: try summary(withFleet.fromResponse),
                    fleetRSS: ProcessStats.residentBytes(pid: started.pid) ?? 0, firstError: fields["first_error"])
                context.log(
                    "  run \(index): coordinator RSS \(mib(Double(rssBefore))) → \(mib(Double(rssAfter))) = "
                        + "\(String(format: "%.1f", run.rssPerAgent / 1024)) KiB/agent; \(run.heartbeats) heartbeats in "
                        + "\(String(format: "%.1f", run.windowSeconds)) s, CPU \(String(format: "%.2f", run.windowCPU)) s = "
                        + "\(String(format: "%.3f", run.cores)) cores, \(String(format: "%.1f", run.cpuPerHeartbeat * 1e6)) µs/heartbeat; "
                        + "dispatch median \(ms(run.dispatchWithFleet.median)) p99 \(ms(run.dispatchWithFleet.p99)) "
                        + "(without the fleet \(ms(run.dispatchIdle.median)))")
                runs.append(run)
            } catch {
                var tail = ""
                if let fleet { tail = "\n--- gantry-fleet ---\n" + ChildProcess.tail(of: fleet.stdoutPath, lines: 5) }
                throw HarnessError("fleet run \(index) (\(size) agents) failed: \(error)\n\(cluster.diagnostics())\(tail)")
            }
        }
        return runs
    }

    /// Waits for the next `status` line of the fleet (one per second) and returns its
    /// cumulative heartbeat-ack count with the coordinator's CPU sampled as it appeared.
    private func waitForStatus(
        out: String, fleet: ChildProcess, coordinator: pid_t
    ) throws -> (Int, Double, ContinuousClock.Instant) {
        let initial = Self.statusLines(out).count
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let lines = Self.statusLines(out)
            if lines.count > initial, let last = lines.last {
                let now = ContinuousClock.now
                let acks = Int(Self.fields(last)["acks"] ?? "") ?? 0
                return (acks, ProcessStats.cpuSeconds(pid: coordinator) ?? 0, now)
            }
            guard fleet.isRunning else { throw HarnessError("gantry-fleet exited:\n\(ChildProcess.tail(of: out))") }
            usleep(5_000)
        }
        throw HarnessError("gantry-fleet printed no status line for 10 s")
    }

    static func statusLines(_ path: String) -> [Substring] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.hasPrefix("status ") }
    }

    /// `key=value` fields of a fleet line (a `first_error=` value runs to the end).
    static func fields(_ line: some StringProtocol) -> [String: String] {
        var result: [String: String] = [:]
        var text = String(line)
        if let range = text.range(of: " first_error=") {
            result["first_error"] = String(text[range.upperBound...])
            text = String(text[..<range.lowerBound])
        }
        for field in text.split(separator: " ") {
            let parts = field.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
        }
        return result
    }
}

