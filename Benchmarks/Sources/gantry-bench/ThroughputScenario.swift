import BenchKit
import Foundation
import GantryProtocol

/// Scenario 2: throughput of trivial jobs queued at once.
///
/// N independent steps, each `true`, in pipelines of 500 (the per-file limit) submitted
/// back to back: the coordinator stores each pipeline's jobs in one transaction and leases
/// them as agents become ready. Jobs/s is N over the time from sending the submit to the last job terminal.
/// Completion is detected by polling `GET /v1/jobs?state=<unfinished>&limit=1` every
/// 50 ms (so the end time is known to within 50 ms, and the poll costs the coordinator a
/// single indexed row read, not a 2,000-job pipeline document).
struct ThroughputScenario {
    struct Run {
        var index: Int
        var agents: Int
        var jobs: Int
        var seconds: Double
        var submitMilliseconds: Double
        var coordinatorCPU: Double
        var agentsCPU: Double
        var stepsCPU: Double
        var cgroupMode: String
        var jobsPerSecond: Double { Double(jobs) / seconds }
        var coordinatorCPUPerJob: Double { coordinatorCPU / Double(jobs) }
        var agentCPUPerJob: Double { agentsCPU / Double(jobs) }
        var stepCPUPerJob: Double { stepsCPU / Double(jobs) }
    }

    let context: BenchContext
    var jobs: Int { context.quick ? 200 : 2000 }
    static let pollInterval: Duration = .milliseconds(50)

    func run(agents agentCount: Int) async throws -> [Run] {
        var runs: [Run] = []
        for index in 1...context.runs {
            let cluster = try Cluster(
                name: "throughput-\(agentCount)-\(index)", binaries: context.binaries, workDir: context.workDir)
            defer { cluster.tearDown() }
            do {
                try cluster.startCoordinator()
                let agents = try cluster.startAgents(count: agentCount, labels: "pool=throughput", cgroups: true)
                let api = try cluster.client
                let coordinator = try cluster.coordinatorPID
                // Let every agent's Ready land before the clock starts.
                try await Task.sleep(for: .milliseconds(500))
                let coordinatorBefore = ProcessStats.cpuSeconds(pid: coordinator) ?? 0
                let agentsBefore = agents.map { ProcessStats.cpuSeconds(pid: $0.pid) ?? 0 }.reduce(0, +)
                let stepsBefore = agents.map { ProcessStats.childrenCPUSeconds(pid: $0.pid) ?? 0 }.reduce(0, +)
                let timing = try await Self.runJobs(api: api, jobs: jobs, pool: "throughput")
                let coordinatorCPU = (ProcessStats.cpuSeconds(pid: coordinator) ?? 0) - coordinatorBefore
                let agentsCPU = agents.map { ProcessStats.cpuSeconds(pid: $0.pid) ?? 0 }.reduce(0, +) - agentsBefore
                let stepsCPU = agents.map { ProcessStats.childrenCPUSeconds(pid: $0.pid) ?? 0 }.reduce(0, +) - stepsBefore
                try await Self.verify(api: api, pipelines: timing.pipelines, jobs: jobs)
                let run = Run(
                    index: index, agents: agentCount, jobs: jobs, seconds: timing.seconds,
                    submitMilliseconds: timing.submitMilliseconds, coordinatorCPU: coordinatorCPU,
                    agentsCPU: agentsCPU, stepsCPU: stepsCPU, cgroupMode: Cluster.cgroupMode(of: agents[0]))
                context.log(
                    "  run \(index): \(jobs) jobs on \(agentCount) agents in \(String(format: "%.2f", run.seconds)) s = "
                        + "\(String(format: "%.0f", run.jobsPerSecond)) jobs/s; coordinator CPU "
                        + "\(String(format: "%.3f", run.coordinatorCPUPerJob * 1000)) ms/job, agents "
                        + "\(String(format: "%.3f", run.agentCPUPerJob * 1000)) ms/job, steps "
                        + "\(String(format: "%.3f", run.stepCPUPerJob * 1000)) ms/job")
                runs.append(run)
            } catch {
                throw HarnessError("throughput run \(index) (\(agentCount) agents) failed: \(error)\n\(cluster.diagnostics())")
            }
        }
        return runs
    }

    struct Timing {
        var seconds: Double
        var submitMilliseconds: Double
        var pipelines: [API.Pipeline]
    }

    /// Submits `jobs` steps selecting `pool: <pool>` in pipelines of at most 500 and waits
    /// until none is unfinished: the measured part, shared with the cluster scenario. The
    /// caller reads CPU counters around it, then checks the outcome with `verify`.
    static func runJobs(api: APIClient, jobs: Int, pool: String) async throws -> Timing {
        // Pipelines of at most 500 steps each (the parser's per-file limit, docs/pipeline.md).
        let perPipeline = min(jobs, 500)
        let yaml =
            "steps:\n"
            + (1...perPipeline).map { "  - key: t\($0)\n    command: \"true\"\n    agents:\n      pool: \(pool)\n" }.joined()
        let start = ContinuousClock.now
        var pipelines: [API.Pipeline] = []
        for _ in 0..<(jobs / perPipeline) { pipelines.append(try await api.submit(yaml: yaml, file: "throughput.yml")) }
        let submitted = ContinuousClock.now
        let deadline = start + .seconds(600)
        while try await api.anyUnfinishedJob() {
            guard ContinuousClock.now < deadline else { throw HarnessError("jobs did not finish within 600 s") }
            try await Task.sleep(for: pollInterval)
        }
        let end = ContinuousClock.now
        return Timing(seconds: (end - start).seconds, submitMilliseconds: (submitted - start).milliseconds, pipelines: pipelines)
    }

    /// Every job of `pipelines` succeeded.
    static func verify(api: APIClient, pipelines: [API.Pipeline], jobs: Int) async throws {
        var succeeded = 0
        for pipeline in pipelines {
            succeeded += try await api.pipeline(pipeline.id).jobs.filter { $0.state == "succeeded" }.count
        }
        guard succeeded == jobs else { throw HarnessError("\(succeeded) of \(jobs) jobs succeeded") }
    }
}
