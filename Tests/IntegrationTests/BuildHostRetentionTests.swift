import Foundation
import GantryProtocol
import Subprocess
import Testing

/// Issue 13, retention on build hosts, with the real binaries: what a killed agent left in
/// the work root and the spool goes when the next agent starts there, what a live slot
/// sharing the work root holds stays; an agent below its free-space floor stays connected,
/// takes nothing, and says why in `GET /v1/agents` and `gantry agents`.
@Suite("Build-host retention", .serialized, .timeLimit(.minutes(3)))
struct BuildHostRetentionTests {
    static func agents(_ cluster: TestCluster) async throws -> [API.Agent] {
        let (status, data) = try await cluster.request(.GET, "/v1/agents")
        guard status == 200 else { throw TimedOut(description: "GET /v1/agents answered \(status)") }
        return try API.decoder.decode([API.Agent].self, from: data)
    }

    @Test func aKilledAgentsLeftoversAreReclaimedAtTheNextStartAndALiveSlotsAreKept() async throws {
        try await TestCluster.with("reclaim") { cluster in
            let files = FileManager.default
            let work = cluster.root + "/work"
            let spool = cluster.agentState + "/spool"
            // Slot 1 runs a job that says its pid, so the test can stop it.
            let one = try await cluster.startAgent(slot: "1")
            let pipeline = try await cluster.submit(
                "steps:\n  - key: long\n    command: echo $$ > pid; exec sleep 60\n")
            let job = pipeline.jobs[0].id
            let live = "\(work)/\(job)-1"
            try await waitUntil("the job to run on slot 1", timeout: .seconds(30)) {
                guard files.fileExists(atPath: live + "/pid") else { return false }
                return try await cluster.job(job).state == "running"
            }
            let stepPID = try #require(
                Int32(String(decoding: try Data(contentsOf: URL(fileURLWithPath: live + "/pid")), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)))
            defer { kill(stepPID, SIGKILL) }

            // What a killed agent leaves: an attempt dir with its siblings and an unheld lock,
            // a spool file of the next slot's, a dead pid slot's spool dir; and a dir with no
            // lock at all (--keep-work-dirs), which is kept.
            try files.createDirectory(atPath: "\(work)/dead-7/src", withIntermediateDirectories: true)
            try Data(repeating: 1, count: 100_000).write(to: URL(fileURLWithPath: "\(work)/dead-7/src/big"))
            for file in ["dead-7.ca.pem", "dead-7.cache.tgz", "dead-7.lock"] {
                #expect(files.createFile(atPath: "\(work)/\(file)", contents: Data("x".utf8)))
            }
            try files.createDirectory(atPath: "\(work)/dead-7.home-Ab12Cd", withIntermediateDirectories: true)
            try files.createDirectory(atPath: "\(work)/kept-1", withIntermediateDirectories: true)
            try files.createDirectory(atPath: "\(spool)/testhost_2", withIntermediateDirectories: true)
            #expect(files.createFile(atPath: "\(spool)/testhost_2/dead-7.log", contents: Data("log".utf8)))
            try files.createDirectory(atPath: "\(spool)/testhost_pid-4242", withIntermediateDirectories: true)
            #expect(files.createFile(atPath: "\(spool)/testhost_pid-4242/gone-1.log", contents: Data("log".utf8)))
            #expect(files.createFile(atPath: "\(spool)/testhost_pid-4242.lock", contents: nil))

            let two = try await cluster.startAgent(slot: "2")
            let line = try await two.waitForLine(containing: "reclaimed what earlier agents left behind")
            #expect(line.contains("work_root_entries=5"))
            #expect(line.contains("spool_entries=2"))
            for gone in ["dead-7", "dead-7.ca.pem", "dead-7.cache.tgz", "dead-7.lock", "dead-7.home-Ab12Cd"] {
                #expect(!files.fileExists(atPath: "\(work)/\(gone)"), "\(gone)")
            }
            #expect(!files.fileExists(atPath: "\(spool)/testhost_2/dead-7.log"))
            #expect(!files.fileExists(atPath: "\(spool)/testhost_pid-4242"))
            // Slot 1's running attempt and its spool, and the unlocked dir, are untouched.
            #expect(files.fileExists(atPath: live + "/pid"))
            #expect(files.fileExists(atPath: live + ".lock"))
            #expect(files.fileExists(atPath: "\(spool)/testhost_1/\(job)-1.log"))
            #expect(files.fileExists(atPath: "\(work)/kept-1"))

            // Slot 1 is killed mid-job: the next agent on the work root reclaims its attempt.
            one.signal(SIGKILL)
            _ = try await one.waitForExit(timeout: .seconds(30))
            kill(stepPID, SIGKILL)
            #expect(files.fileExists(atPath: live))
            let three = try await cluster.startAgent(slot: "1")
            _ = try await three.waitForLine(containing: "reclaimed what earlier agents left behind")
            #expect(!files.fileExists(atPath: live))
            #expect(!files.fileExists(atPath: live + ".lock"))
            #expect(!files.fileExists(atPath: "\(spool)/testhost_1/\(job)-1.log"))
        }
    }

    @Test func anAgentBelowItsFreeSpaceFloorIsConnectedTakesNoJobAndSaysWhy() async throws {
        try await TestCluster.with("disk-floor") { cluster in
            // 100% of a filesystem is never free: the floor is always crossed.
            let low = try await cluster.startAgent(slot: "1", extraArguments: ["--min-free-space", "100%"])
            _ = try await low.waitForLine(containing: "not taking new jobs")
            var reason = ""
            try await waitUntil("the coordinator to show why slot 1 takes no jobs", timeout: .seconds(15)) {
                reason = try await Self.agents(cluster).first { $0.id == "testhost/1" }?.notReadyReason ?? ""
                return !reason.isEmpty
            }
            #expect(reason.contains("low disk space"))
            #expect(reason.contains("--min-free-space"))
            let pipeline = try await cluster.submit("steps:\n  - key: build\n    command: echo built\n")
            let job = pipeline.jobs[0].id
            // Heartbeats (every 0.5 s) for 2 s later the agent is still connected, idle, and
            // the job still waits.
            let seen = try #require(try await Self.agents(cluster).first { $0.id == "testhost/1" }?.lastSeenAt)
            try await waitUntil("2 s more of slot 1's heartbeats", timeout: .seconds(15)) {
                let last = try await Self.agents(cluster).first { $0.id == "testhost/1" }?.lastSeenAt
                return last.map { $0.timeIntervalSince(seen) >= 2 } ?? false
            }
            let agent = try #require(try await Self.agents(cluster).first { $0.id == "testhost/1" })
            #expect(agent.connected && agent.state == "idle" && agent.runningJobs.isEmpty)
            #expect(try await cluster.job(job).state == "queued")
            #expect(try await cluster.attempts(job).isEmpty)

            let listed = try await Subprocess.run(
                .path(.init(cluster.binaries + "/gantry")), arguments: Arguments(["agents", "--server", cluster.serverURL]),
                environment: .inherit.updating(["GANTRY_TOKEN": cluster.adminToken, "HOME": cluster.root]),
                output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
            #expect(listed.terminationStatus.isSuccess)
            #expect(listed.standardOutput.contains("not ready: low disk space"))

            // An agent without the floor takes the job: it was kept queued, never failed.
            _ = try await cluster.startAgent(slot: "2", extraArguments: ["--min-free-space", "0"])
            let done = try await cluster.waitForJob(job, "the job to run on slot 2", timeout: .seconds(30)) { $0.state == "succeeded" }
            #expect(done.agentId == "testhost/2")
        }
    }
}
