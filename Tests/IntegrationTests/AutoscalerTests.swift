import Foundation
import GantryProtocol
import Testing

/// `gantry-agent scale` with the process provider against a real coordinator: scale-out
/// on pushed demand, one fresh agent process per job, scale-in by drain only.
@Suite("Autoscaler", .serialized, .timeLimit(.minutes(5)))
struct AutoscalerTests {
    /// What the scaler's log says about its slots' processes.
    struct SlotEvents {
        var started: [(slot: Int, pid: Int32)] = []
        var exited: [(slot: Int, pid: Int32, status: String)] = []
        var scaling: [(target: Int, live: Int)] = []
        var drainRequests = 0

        init(_ lines: [String]) {
            for line in lines where line.contains("gantry-scaler:") {
                let fields = Self.fields(line)
                if line.hasSuffix("slot started"), let slot = fields["slot"].flatMap(Int.init),
                    let pid = fields["pid"].flatMap(Int32.init)
                {
                    started.append((slot, pid))
                } else if line.hasSuffix("slot exited"), let slot = fields["slot"].flatMap(Int.init),
                    let pid = fields["pid"].flatMap(Int32.init)
                {
                    exited.append((slot, pid, fields["status"] ?? "?"))
                } else if line.hasSuffix("scaling"), let target = fields["target"].flatMap(Int.init),
                    let live = fields["live"].flatMap(Int.init)
                {
                    scaling.append((target, live))
                } else if line.contains("scale-in: asking the coordinator") {
                    drainRequests += 1
                }
            }
        }

        /// swift-log's `key=value` metadata; a value runs to the next ` key=`.
        static func fields(_ line: String) -> [String: String] {
            var result: [String: String] = [:]
            let pattern = /([a-z_]+)=(.*?)(?= [a-z_]+=| \[| *$)/
            for match in line.matches(of: pattern) { result[String(match.1)] = String(match.2) }
            return result
        }
    }

    /// Stops any agent the scaler started that is still alive (only if the scaler itself
    /// was killed before it could drain them), by pid.
    static func reapSlots(_ events: SlotEvents) {
        let exited = Set(events.exited.map(\.pid))
        for (_, pid) in events.started where !exited.contains(pid) && kill(pid, 0) == 0 { kill(pid, SIGKILL) }
    }

    @Test func processProviderScalesToFourAndBackToZeroWithoutKillingABusyAgent() async throws {
        try await TestCluster.with("scale-process") { cluster in
            let scaler = try await cluster.startScaler([
                "--labels", "os=linux,pool=scaled", "--min", "0", "--max", "4", "--cooldown", "1",
                "--provider", "process", "--work-root", cluster.root + "/work", "--agent-arg=--heartbeat-interval=0.5",
            ])
            defer { Self.reapSlots(SlotEvents(scaler.lines)) }
            let steps = (1...20).map { index in
                "  - key: s\(index)\n    command: echo \"agent_pid=$PPID work=$PWD\"; sleep 0.3\n    agents: {pool: scaled}\n"
            }
            let pipeline = try await cluster.submit("steps:\n" + steps.joined())
            let done = try await cluster.waitForPipeline(pipeline.id, timeout: .seconds(120))
            #expect(done.state == "succeeded")

            var pids: [Int32] = []
            var workDirs: [String] = []
            for job in done.jobs {
                #expect(job.attempt == 1, "job \(job.key) needed \(job.attempt) attempts")
                let attempts = try await cluster.attempts(job.id)
                #expect(attempts.map(\.state) == ["succeeded"], "job \(job.key): \(attempts.map(\.state))")
                let log = String(decoding: try await cluster.log(job.id), as: UTF8.self)
                let fields = SlotEvents.fields(log.trimmingCharacters(in: .whitespacesAndNewlines))
                if let pid = fields["agent_pid"].flatMap(Int32.init) { pids.append(pid) }
                if let work = fields["work"] { workDirs.append(work) }
            }
            // Every job ran in its own agent process and work dir, and the dirs are gone.
            #expect(Set(pids).count == 20, "agent pids: \(pids)")
            #expect(Set(workDirs).count == 20)
            #expect(workDirs.allSatisfy { !FileManager.default.fileExists(atPath: $0) })

            // After the cool-down the scaler is back to zero slots, every agent exited.
            try await waitUntil("the scaler back at zero slots", timeout: .seconds(30)) {
                let events = SlotEvents(scaler.lines)
                return events.scaling.last.map { $0.target == 0 && $0.live == 0 } == true
                    && events.exited.count == events.started.count
            }
            let events = SlotEvents(scaler.lines)
            #expect(events.scaling.contains { $0.live == 4 }, "never reached 4 slots: \(events.scaling)")
            #expect(Set(events.started.map(\.slot)) == [1, 2, 3, 4])
            // The jobs' agents are the scaler's children...
            #expect(Set(pids).isSubset(of: Set(events.started.map(\.pid))))
            // ...and no agent was killed: each exited 0, after its one job or drained idle.
            #expect(events.exited.allSatisfy { $0.status == "exited 0" }, "\(events.exited)")
            let ranJob = Set(pids)
            let idleDrained = events.started.filter { !ranJob.contains($0.pid) }.count
            #expect(events.started.count == 20 + idleDrained)
        }
    }

    @Test func scaleInRacingNewJobsNeverLosesOrDoublesAJob() async throws {
        try await TestCluster.with("scale-race") { cluster in
            // No cool-down: an agent that comes up to find its job taken is drained at
            // once, while the next job is being queued.
            let scaler = try await cluster.startScaler([
                "--labels", "os=linux,pool=race", "--min", "0", "--max", "3", "--cooldown", "0",
                "--provider", "process", "--work-root", cluster.root + "/work", "--agent-arg=--heartbeat-interval=0.5",
            ])
            defer { Self.reapSlots(SlotEvents(scaler.lines)) }
            var generator = SystemRandomNumberGenerator()
            var pipelines: [String] = []
            for index in 0..<24 {
                let pipeline = try await cluster.submit(
                    "steps:\n  - key: r\(index)\n    command: echo ran-\(index)\n    agents: {pool: race}\n")
                pipelines.append(pipeline.id)
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...120, using: &generator)))
            }
            for (index, id) in pipelines.enumerated() {
                let done = try await cluster.waitForPipeline(id, timeout: .seconds(120))
                #expect(done.state == "succeeded", "pipeline \(index): \(done.jobs.map(\.state))")
                let job = try #require(done.jobs.first)
                // Attempts an agent refused (it was drained as the lease crossed) never
                // ran; exactly one attempt ran, and the step's output is there once.
                let attempts = try await cluster.attempts(job.id)
                let ran = attempts.filter { $0.state != "refused" }
                #expect(ran.map(\.state) == ["succeeded"], "job \(index): \(attempts.map(\.state))")
                let log = String(decoding: try await cluster.log(job.id), as: UTF8.self)
                #expect(log.components(separatedBy: "ran-\(index)\n").count == 2, "log of job \(index): \(log)")
            }
            try await waitUntil("every slot to exit", timeout: .seconds(30)) {
                let events = SlotEvents(scaler.lines)
                return events.exited.count == events.started.count && events.scaling.last?.live == 0
            }
            let events = SlotEvents(scaler.lines)
            #expect(events.exited.allSatisfy { $0.status == "exited 0" }, "\(events.exited)")
            #expect(events.drainRequests > 0, "the scaler never scaled in, so the race was not exercised")
        }
    }
}
