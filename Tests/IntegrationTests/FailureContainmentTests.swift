import Crypto
import Foundation
import GantryProtocol
import Subprocess
import Testing

/// The failure model of DESIGN.md with the real binaries: agents and the coordinator
/// killed, the network cut, jobs cancelled and timed out, agents drained. Every test
/// checks final job states and log contents (sha256) against what the step printed.
@Suite("Failure containment", .serialized, .timeLimit(.minutes(5)))
struct FailureContainmentTests {
    /// Heartbeat 0.5 s (agents are started with it), lease TTL 3 s.
    static let ttl: Duration = .seconds(3)
    static let coordinatorArguments = ["--heartbeat-interval", "0.5", "--lease-ttl", "3"]

    /// A step printing `lines` numbered lines, one every `interval` seconds, after
    /// recording that it ran (one line per attempt in `runs`) and its session id.
    static func tickingStep(key: String, lines: Int, interval: String, runs: String, extra: String = "") -> String {
        """
          - key: \(key)
            command: |
              echo "$GANTRY_ATTEMPT $$" >> \(runs)
              i=0
              while [ $i -lt \(lines) ]; do i=$((i+1)); echo "line $i of \(lines): some build output to make it longer"; sleep \(interval); done
        \(extra)
        """
    }

    static func expectedTicks(_ lines: Int) -> Data {
        Data((1...lines).map { "line \($0) of \(lines): some build output to make it longer\n" }.joined().utf8)
    }

    static func sha(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    static func runs(_ path: String) -> [(attempt: Int, session: Int32)] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let attempt = Int(parts[0]), let session = Int32(parts[1]) else { return nil }
            return (attempt, session)
        }
    }

    /// Pids of live (non-zombie) processes in a session, from /proc.
    static func processes(inSession session: Int32) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }.filter { pid in
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = text.lastIndex(of: ")")
            else { return false }
            let fields = text[text.index(after: close)...].split(separator: " ")
            // After the command name: state, ppid, pgrp, session, ...
            return fields.count > 3 && fields[0] != "Z" && Int32(fields[3]) == session
        }
    }

    func withCluster(_ name: String, _ body: (TestCluster) async throws -> Void) async throws {
        try await TestCluster.with(name, coordinatorArguments: Self.coordinatorArguments, body)
    }

    // 1.
    @Test func agentKilledMidJobIsRetriedOnAnotherAgentWithinTheTTL() async throws {
        try await withCluster("kill-agent") { cluster in
            let runs = cluster.root + "/runs"
            let first = try await cluster.startAgent(slot: "1")
            // 6 s of output: the second agent must be up before the first attempt ends, and
            // starting a process takes seconds when the whole suite runs in parallel.
            let pipeline = try await cluster.submit("steps:\n" + Self.tickingStep(key: "long", lines: 60, interval: "0.1", runs: runs))
            let jobID = pipeline.jobs[0].id
            try await cluster.waitForJob(jobID, "running with output") { $0.state == "running" && $0.logBytes > 0 }
            let second = try await cluster.startAgent(slot: "2")
            _ = second
            first.signal(SIGKILL)
            let killedAt = Date()
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "succeeded")
            let attempts = try await cluster.attempts(jobID)
            #expect(attempts.map(\.state) == ["lost", "succeeded"])
            #expect(attempts.first?.reason == "agent_lost")
            #expect(attempts.last?.agentId.hasSuffix("/2") == true)
            let retryStarted = try #require(attempts.last?.startedAt)
            #expect(retryStarted.timeIntervalSince(killedAt) < 3 + 1, "kill → retry start within TTL + 1 s")
            #expect(Self.sha(try await cluster.log(jobID)) == Self.sha(Self.expectedTicks(60)))
            #expect(Self.runs(runs).map(\.attempt) == [1, 2])
        }
    }

    // 2.
    @Test func coordinatorKilledMidJobLosesNothingAndRunsNothingTwice() async throws {
        try await withCluster("kill-coordinator") { cluster in
            let runs = cluster.root + "/runs"
            try await cluster.startAgent(slot: "1")
            try await cluster.startAgent(slot: "2")
            let pipeline = try await cluster.submit(
                "steps:\n" + Self.tickingStep(key: "a", lines: 30, interval: "0.05", runs: runs)
                    + Self.tickingStep(key: "b", lines: 10, interval: "0.02", runs: runs, extra: "    depends_on: a\n"))
            try await cluster.waitForJob(pipeline.jobs[0].id, "half way") { $0.logBytes > 600 }
            try await cluster.killCoordinator()
            try await Task.sleep(for: .milliseconds(700))  // agents keep running and spooling meanwhile
            try await cluster.startCoordinator(extraArguments: Self.coordinatorArguments)
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "succeeded")
            #expect(done.jobs.map(\.attempt) == [1, 1], "no job was run twice")
            #expect(Self.runs(runs).count == 2)
            #expect(Self.sha(try await cluster.log(done.jobs[0].id)) == Self.sha(Self.expectedTicks(30)))
            #expect(Self.sha(try await cluster.log(done.jobs[1].id)) == Self.sha(Self.expectedTicks(10)))
        }
    }

    // 3a.
    @Test func shortNetworkCutResumesWithTheLogIntact() async throws {
        // A 5 s TTL for a 1 s cut: after the restore the agent may need a few attempts (one
        // can stall in the test proxy for its whole attempt timeout, TTL/3), and the TTL
        // counts from the last heartbeat before the cut. At 3 s this failed about 1 run in 20
        // on a loaded 2-core machine, never for a reason in Gantry.
        try await TestCluster.with("short-cut", coordinatorArguments: ["--heartbeat-interval", "0.5", "--lease-ttl", "5"]) { cluster in
            let runs = cluster.root + "/runs"
            let proxy = TCPProxy(target: cluster.agentAddress)
            let proxied = try await proxy.start()
            defer { proxy.stop() }
            let agent = try await cluster.startAgent(slot: "1", coordinator: proxied)
            let pipeline = try await cluster.submit("steps:\n" + Self.tickingStep(key: "a", lines: 40, interval: "0.05", runs: runs))
            let jobID = pipeline.jobs[0].id
            try await cluster.waitForJob(jobID, "streaming") { $0.logBytes > 300 }
            proxy.cut()
            try await Task.sleep(for: .seconds(1))  // well under the TTL
            proxy.restore()
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "succeeded")
            #expect(done.jobs[0].attempt == 1)
            #expect(Self.sha(try await cluster.log(jobID)) == Self.sha(Self.expectedTicks(40)))
            #expect(agent.output.contains("reconnecting"))
        }
    }

    // 3b.
    @Test func longNetworkCutRetriesElsewhereAndTheStaleAgentKillsItsCopy() async throws {
        try await withCluster("long-cut") { cluster in
            let runs = cluster.root + "/runs"
            let proxy = TCPProxy(target: cluster.agentAddress)
            let proxied = try await proxy.start()
            defer { proxy.stop() }
            let stale = try await cluster.startAgent(slot: "far", coordinator: proxied)
            let pipeline = try await cluster.submit("steps:\n" + Self.tickingStep(key: "a", lines: 150, interval: "0.1", runs: runs))
            let jobID = pipeline.jobs[0].id
            try await cluster.waitForJob(jobID, "streaming on the far agent") { $0.logBytes > 100 }
            proxy.cut()
            try await cluster.startAgent(slot: "near")
            // Longer than the TTL: the job is lost and retried on the near agent.
            try await cluster.waitForJob(jobID, "retried", timeout: .seconds(15)) { $0.attempt == 2 }
            let firstSession = try #require(Self.runs(runs).first?.session)
            #expect(!Self.processes(inSession: firstSession).isEmpty, "the far copy still runs while cut off")
            proxy.restore()
            // The far agent reconnects, is told its attempt is stale, and kills its copy.
            _ = try await stale.waitForLine(containing: "aborting our copy", timeout: .seconds(20))
            try await waitUntil("the stale copy's processes to be gone", timeout: .seconds(15)) {
                Self.processes(inSession: firstSession).isEmpty
            }
            let done = try await cluster.waitForPipeline(pipeline.id)
            #expect(done.state == "succeeded")
            let attempts = try await cluster.attempts(jobID)
            #expect(attempts.map(\.state) == ["lost", "succeeded"])
            #expect(Self.sha(try await cluster.log(jobID)) == Self.sha(Self.expectedTicks(150)))
        }
    }

    // 4.
    @Test func cancelAndTimeoutKillTheWholeTreeIncludingATermIgnoringGrandchild() async throws {
        try await withCluster("cancel-timeout") { cluster in
            let runs = cluster.root + "/runs"
            let pids = cluster.root + "/pids"
            try await cluster.startAgent(slot: "1")
            try await cluster.startAgent(slot: "2")
            let tree = """
                    command: |
                      echo "$GANTRY_ATTEMPT $$" >> \(runs)
                      (trap '' TERM; while true; do sleep 0.2; done) & echo $! >> \(pids)
                      setsid sh -c 'trap "" TERM; exec sleep 120' >/dev/null 2>&1 < /dev/null & echo $! >> \(pids)
                      echo started
                      sleep 120
                """
            let pipeline = try await cluster.submit(
                "steps:\n  - key: cancelled\n\(tree)\n    cancel_grace: 1s\n  - key: timed\n\(tree)\n    timeout: 2s\n    cancel_grace: 1s\n")
            let cancelled = pipeline.jobs[0].id
            try await cluster.waitForJob(cancelled, "started") { $0.logBytes > 0 }
            let (status, _) = try await cluster.request(.POST, "/v1/jobs/\(cancelled)/cancel")
            #expect(status == 202)
            let done = try await cluster.waitForPipeline(pipeline.id, timeout: .seconds(30))
            #expect(done.jobs.map(\.state) == ["cancelled", "timed_out"])
            for job in done.jobs {
                #expect(String(decoding: try await cluster.log(job.id), as: UTF8.self) == "started\n", "log tail kept")
            }
            let sessions = Self.runs(runs).map(\.session)
            #expect(sessions.count == 2)
            let escapees = ((try? String(contentsOfFile: pids, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
            #expect(escapees.count == 4)
            try await waitUntil("every process of both steps to be gone", timeout: .seconds(30)) {
                sessions.allSatisfy { Self.processes(inSession: $0).isEmpty }
                    && escapees.allSatisfy { kill($0, 0) != 0 || OrphanState.isZombie($0) }
            }
        }
    }

    // 5.
    @Test func sigtermDrainsABusyAgent() async throws {
        try await withCluster("drain") { cluster in
            let runs = cluster.root + "/runs"
            let agent = try await cluster.startAgent(slot: "1")
            let pipeline = try await cluster.submit("steps:\n" + Self.tickingStep(key: "a", lines: 15, interval: "0.1", runs: runs))
            let jobID = pipeline.jobs[0].id
            try await cluster.waitForJob(jobID, "running") { $0.logBytes > 0 }
            agent.signal(SIGTERM)
            _ = try await agent.waitForLine(containing: "draining")
            let second = try await cluster.submit("steps:\n  - key: later\n    command: echo later\n")
            #expect(try await agent.waitForExit(timeout: .seconds(30)) == .exited(0))
            let first = try await cluster.job(jobID)
            #expect(first.state == "succeeded")
            #expect(Self.sha(try await cluster.log(jobID)) == Self.sha(Self.expectedTicks(15)))
            let waiting = try await cluster.job(second.jobs[0].id)
            #expect(waiting.state == "queued" && waiting.attempt == 0, "nothing was leased to the draining agent")
            try await cluster.startAgent(slot: "2")
            #expect(try await cluster.waitForPipeline(second.id).state == "succeeded")
        }
    }
}

enum OrphanState {
    static func isZombie(_ pid: Int32) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = text.lastIndex(of: ")")
        else { return false }
        return text[text.index(after: close)...].split(separator: " ").first == "Z"
    }
}
