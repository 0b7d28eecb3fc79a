import BenchKit
import Foundation

/// Scenario 1: dispatch latency, from the pipeline accepted by the HTTP API to the step's
/// first instruction running on an idle, connected agent.
///
/// Each job is a one-step pipeline whose command is `date +%s%N`: the step prints the
/// wall clock as its first instruction, and the driver compares it with the wall clock at
/// which the `POST /v1/pipelines` response was received (same host, same clock). Jobs are
/// sequential: the next is submitted once the previous has finished (followed with
/// `GET /v1/jobs/{id}/log?follow=1`, which returns at the job's end without polling), so
/// every job finds idle agents.
struct DispatchScenario {
    struct Run {
        var index: Int
        var cgroupsRequested: Bool
        var cgroupMode: String
        /// Response received → first instruction, ms.
        var fromResponse: Summary
        /// Request sent → first instruction, ms (includes the API's own handling).
        var fromRequest: Summary
        /// The whole cycle per job (submit → finished → next), ms: what bounds sequential use.
        var cycle: Summary
        var coordinatorRSSAfter: Int
        /// The response → start samples themselves, pooled over runs in the report.
        var samples: [Double]
    }

    let context: BenchContext
    var agents: Int { 4 }
    var jobs: Int { context.quick ? 60 : 500 }
    var warmup: Int { 10 }

    func run(cgroups: Bool) async throws -> [Run] {
        var runs: [Run] = []
        for index in 1...context.runs {
            let cluster = try Cluster(
                name: "dispatch-\(cgroups ? "cgroups" : "nocgroups")-\(index)", binaries: context.binaries,
                workDir: context.workDir)
            defer { cluster.tearDown() }
            do {
                try cluster.startCoordinator()
                let started = try cluster.startAgents(count: agents, labels: "pool=dispatch", cgroups: cgroups)
                let mode = Cluster.cgroupMode(of: started[0])
                let samples = try await Self.measure(
                    api: try cluster.client, jobs: jobs, warmup: warmup, selector: "pool: dispatch")
                let run = Run(
                    index: index, cgroupsRequested: cgroups, cgroupMode: mode,
                    fromResponse: try summary(samples.fromResponse), fromRequest: try summary(samples.fromRequest),
                    cycle: try summary(samples.cycle),
                    coordinatorRSSAfter: ProcessStats.residentBytes(pid: try cluster.coordinatorPID) ?? 0,
                    samples: samples.fromResponse)
                context.log(
                    "  run \(index) (cgroups \(mode)): \(jobs) jobs, response→start median \(ms(run.fromResponse.median)) "
                        + "p95 \(ms(run.fromResponse.p95)) p99 \(ms(run.fromResponse.p99)) max \(ms(run.fromResponse.maximum)); "
                        + "request→start median \(ms(run.fromRequest.median))")
                runs.append(run)
            } catch {
                throw HarnessError("dispatch run \(index) failed: \(error)\n\(cluster.diagnostics())")
            }
        }
        return runs
    }

    struct Samples {
        var fromResponse: [Double] = []
        var fromRequest: [Double] = []
        var cycle: [Double] = []
    }

    /// Runs `warmup + jobs` sequential one-step jobs selecting `selector`; returns the
    /// measured ones (warm-up excluded).
    static func measure(api: APIClient, jobs: Int, warmup: Int, selector: String) async throws -> Samples {
        let yaml = """
            steps:
              - key: probe
                command: date +%s%N
                agents:
                  \(selector)

            """
        var samples = Samples()
        let deadline = ContinuousClock.now + .seconds(Double(jobs + warmup) * 2 + 60)
        for n in 0..<(warmup + jobs) {
            guard ContinuousClock.now < deadline else { throw HarnessError("dispatch jobs exceeded their deadline") }
            let sent = realtimeNanoseconds()
            let pipeline = try await api.submit(yaml: yaml)
            let received = realtimeNanoseconds()
            guard let job = pipeline.jobs.first else { throw HarnessError("the pipeline has no job") }
            let log = try await api.followLog(job.id)
            let finished = realtimeNanoseconds()
            guard let started = Int64(log.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                let state = (try? await api.job(job.id).state) ?? "?"
                throw HarnessError("job \(job.id) (\(state)) printed no timestamp: '\(log.prefix(200))'")
            }
            if n >= warmup {
                samples.fromResponse.append(Double(started - received) / 1e6)
                samples.fromRequest.append(Double(started - sent) / 1e6)
                samples.cycle.append(Double(finished - sent) / 1e6)
            }
        }
        return samples
    }
}

func summary(_ values: [Double]) throws -> Summary {
    guard let summary = Summary(values) else { throw HarnessError("no samples") }
    return summary
}

/// Milliseconds with two decimals and the unit.
func ms(_ value: Double) -> String {
    String(format: "%.2f ms", value)
}
