import Foundation
import GantryProtocol
import Subprocess
import SystemPackage
import Testing

/// `gantry run`, `gantry pipelines` and the CLI's exit codes, with the real binaries and a
/// non-terminal stdout (plain lines, no escapes).
@Suite("CLI progress", .serialized, .timeLimit(.minutes(5)))
struct CLIProgressTests {
    /// A step printing `count` numbered lines, one every `interval` seconds.
    static func countingPipeline(_ count: Int, interval: String) -> String {
        """
        steps:
          - key: count
            command: |
              i=0
              while [ $i -lt \(count) ]; do i=$((i+1)); echo "tick $i"; sleep \(interval); done
        """
    }

    /// The CLI against this cluster, its HOME its own (no saved login or pinned CA).
    static func environment(_ cluster: TestCluster) -> [String: String] {
        ["HOME": cluster.root, "GANTRY_SERVER": cluster.serverURL, "GANTRY_TOKEN": cluster.adminToken, "NO_COLOR": "1"]
    }

    static func gantry(_ cluster: TestCluster, _ arguments: [String], environment: [String: String] = [:]) async throws
        -> (status: TerminationStatus, output: String)
    {
        var env: [Environment.Key: String?] = ["GANTRY_CA_FILE": nil]
        for (key, value) in Self.environment(cluster).merging(environment, uniquingKeysWith: { $1 }) {
            env.updateValue(value, forKey: Environment.Key(rawValue: key)!)
        }
        let result = try await Subprocess.run(
            .path(FilePath(cluster.binaries + "/gantry")), arguments: Arguments(arguments), environment: .inherit.updating(env),
            output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        return (result.terminationStatus, result.standardOutput + result.standardError)
    }

    static func write(_ text: String, to path: String) throws -> String {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The pipeline id from `gantry: pipeline P submitted with N job(s)`.
    static func submittedID(_ process: ChildProcess) async throws -> String {
        let line = try await process.waitForLine(containing: "submitted with", timeout: .seconds(30))
        let words = line.split(separator: " ")
        guard let index = words.firstIndex(of: "pipeline"), index + 1 < words.count else {
            throw TimedOut(description: "no pipeline id in '\(line)'")
        }
        return String(words[index + 1])
    }

    /// The report: the coordinator killed and restarted under a following `gantry
    /// run`. It must reconnect, resume at the next unprinted byte, and exit 0.
    @Test func runFollowsThroughACoordinatorRestartWithoutLosingOrRepeatingALine() async throws {
        try await TestCluster.with("cli-restart") { cluster in
            try await cluster.startAgent(slot: "1")
            let count = 50
            let file = try Self.write(Self.countingPipeline(count, interval: "0.2"), to: cluster.root + "/count.yml")
            let cli = try await ChildProcess(
                name: "gantry-run", executable: cluster.binaries + "/gantry", arguments: ["run", file],
                environment: Self.environment(cluster), logFile: cluster.root + "/gantry-run.log")
            defer { Task { await cli.stop() } }
            let pipelineID = try await Self.submittedID(cli)
            // `gantry logs --follow` on the same job, through the same restart.
            let jobLine = try await cli.waitForLine(containing: "gantry: job ", timeout: .seconds(30))
            let jobID = String(jobLine.split(separator: " ")[2])
            let logs = try await ChildProcess(
                name: "gantry-logs", executable: cluster.binaries + "/gantry", arguments: ["logs", jobID, "--follow"],
                environment: Self.environment(cluster), logFile: cluster.root + "/gantry-logs.log")
            defer { Task { await logs.stop() } }
            _ = try await cli.waitForLine(containing: "tick 5", timeout: .seconds(60))
            _ = try await logs.waitForLine(containing: "tick 5", timeout: .seconds(60))
            try await cluster.killCoordinator()
            // The CLI notices (its next poll or log read fails) before the coordinator is back.
            _ = try await cli.waitForLine(containing: "reconnecting", timeout: .seconds(30))
            try await cluster.startCoordinator()
            let status = try await cli.waitForExit(timeout: .seconds(120))
            #expect(status == .exited(0), "\(cli.output)")
            let ticks = cli.lines.compactMap { line -> Int? in
                guard let range = line.range(of: "] tick ") else { return nil }
                return Int(line[range.upperBound...])
            }
            #expect(ticks == Array(1...count), "\(cli.output)")
            #expect(cli.lines.contains { $0.contains("✓ count succeeded") }, "\(cli.output)")
            #expect(!cli.output.contains("\u{1B}"), "no escapes on a non-terminal")
            #expect(try await cluster.pipeline(pipelineID).state == "succeeded")
            #expect(try await logs.waitForExit(timeout: .seconds(60)) == .exited(0), "\(logs.output)")
            let followed = logs.lines.compactMap { line -> Int? in
                guard line.hasPrefix("tick ") else { return nil }
                return Int(line.dropFirst("tick ".count))
            }
            #expect(followed == Array(1...count), "\(logs.output)")
        }
    }

    /// Nine steps at once (nine agents: one more than the old limit, and no more, as the
    /// suites run beside each other), each waiting until the test has seen every one of
    /// them start in the CLI's output: with the client's old 8 connections per host, the
    /// ninth never showed.
    @Test func runFollowsMoreThanEightStepsAtOnce() async throws {
        try await TestCluster.with("cli-many") { cluster in
            let count = 9
            for slot in 1...count { try await cluster.startAgent(slot: String(slot)) }
            let release = cluster.root + "/release"
            let file = try Self.write(
                """
                steps:
                  - key: wide
                    parallelism: \(count)
                    command: |
                      echo "started $GANTRY_PARALLEL_JOB"
                      i=0
                      while [ ! -e \(release) ] && [ $i -lt 1200 ]; do i=$((i+1)); sleep 0.1; done
                      echo "released $GANTRY_PARALLEL_JOB"
                """, to: cluster.root + "/wide.yml")
            let cli = try await ChildProcess(
                name: "gantry-run-wide", executable: cluster.binaries + "/gantry", arguments: ["run", file],
                environment: Self.environment(cluster), logFile: cluster.root + "/gantry-wide.log")
            defer { Task { await cli.stop() } }
            try await waitUntil("every step's first line printed", timeout: .seconds(90)) {
                Set(cli.lines.filter { $0.contains("] started ") }).count == count
            }
            _ = FileManager.default.createFile(atPath: release, contents: Data())
            let status = try await cli.waitForExit(timeout: .seconds(90))
            #expect(status == .exited(0), "\(cli.output)")
            #expect(cli.lines.filter { $0.contains("] released ") }.count == count, "\(cli.output)")
        }
    }

    /// An agent lost mid-step: the CLI prints the first attempt's log, a marker, then the
    /// second attempt's log from its start, and exits with the pipeline's result.
    @Test func anAttemptChangeShowsAsAMarkerLine() async throws {
        try await TestCluster.with(
            "cli-attempt", coordinatorArguments: ["--heartbeat-interval", "0.5", "--lease-ttl", "3"]
        ) { cluster in
            let first = try await cluster.startAgent(slot: "1")
            let file = try Self.write(Self.countingPipeline(30, interval: "0.1"), to: cluster.root + "/attempt.yml")
            let cli = try await ChildProcess(
                name: "gantry-run-attempt", executable: cluster.binaries + "/gantry", arguments: ["run", file],
                environment: Self.environment(cluster), logFile: cluster.root + "/gantry-attempt.log")
            defer { Task { await cli.stop() } }
            _ = try await cli.waitForLine(containing: "] tick 3", timeout: .seconds(60))
            try await cluster.startAgent(slot: "2")
            first.signal(SIGKILL)
            let status = try await cli.waitForExit(timeout: .seconds(90))
            #expect(status == .exited(0), "\(cli.output)")
            let lines = cli.lines
            let marker = try #require(lines.firstIndex { $0.contains("--- gantry: attempt 2 (previous attempt 1 ended") }, "\(cli.output)")
            let after = lines[marker...].compactMap { line -> Int? in
                guard let range = line.range(of: "] tick ") else { return nil }
                return Int(line[range.upperBound...])
            }
            #expect(after == Array(1...30), "\(cli.output)")
        }
    }

    @Test func exitCodesTellAFailureFromAUsageErrorFromAnUnreachableServer() async throws {
        try await TestCluster.with("cli-exit") { cluster in
            try await cluster.startAgent(slot: "1")
            // 2: usage errors (ArgumentParser's own 64 mapped).
            let usage = try await Self.gantry(cluster, ["jobs", "--limit", "many"])
            #expect(usage.status == .exited(2), "\(usage.output)")
            let unknown = try await Self.gantry(cluster, ["pipelines", "--no-such-option"])
            #expect(unknown.status == .exited(2), "\(unknown.output)")
            // 3: nobody listens, or the server refuses us.
            let closed = try await Self.gantry(cluster, ["jobs"], environment: ["GANTRY_SERVER": "http://127.0.0.1:1"])
            #expect(closed.status == .exited(3), "\(closed.output)")
            let badToken = try await Self.gantry(cluster, ["jobs"], environment: ["GANTRY_TOKEN": "gtk_wrong"])
            #expect(badToken.status == .exited(3), "\(badToken.output)")
            // 0: the version, and `--help` lists the exit codes.
            let version = try await Self.gantry(cluster, ["--version"])
            #expect(version.status == .exited(0) && version.output.contains(GantryVersion.string), "\(version.output)")
            let help = try await Self.gantry(cluster, ["--help"])
            #expect(help.output.contains("3    the coordinator is unreachable"), "\(help.output)")

            // 1: a failing pipeline.
            let failing = try Self.write("steps:\n  - key: broken\n    command: echo about to fail; exit 3\n", to: cluster.root + "/fail.yml")
            let failed = try await Self.gantry(cluster, ["run", failing])
            #expect(failed.status == .exited(1), "\(failed.output)")
            #expect(failed.output.contains("[broken] about to fail") && failed.output.contains("exit status 3"), "\(failed.output)")
            #expect(failed.output.contains("gantry: job "), "the job ids followed are printed: \(failed.output)")

            // Ctrl-C without a terminal: exit 130, the pipeline goes on. A step no agent can
            // run says which labels nobody offers.
            let windows = try Self.write(
                "steps:\n  - key: win\n    command: echo never\n    agents:\n      os: windows\n", to: cluster.root + "/win.yml")
            let waiting = try await ChildProcess(
                name: "gantry-run-win", executable: cluster.binaries + "/gantry", arguments: ["run", windows],
                environment: Self.environment(cluster), logFile: cluster.root + "/gantry-win.log")
            defer { Task { await waiting.stop() } }
            let interruptedID = try await Self.submittedID(waiting)
            _ = try await waiting.waitForLine(containing: "no connected agent offers os=windows", timeout: .seconds(60))
            waiting.signal(SIGINT)
            #expect(try await waiting.waitForExit(timeout: .seconds(30)) == .exited(130), "\(waiting.output)")
            #expect(try await cluster.pipeline(interruptedID).state == "running", "not cancelled by the interrupt")
            _ = try await cluster.request(.POST, "/v1/pipelines/\(interruptedID)/cancel")
            _ = try await cluster.waitForPipeline(interruptedID)

            // 1, and the word cancelled: a cancelled pipeline.
            let slow = try Self.write(Self.countingPipeline(300, interval: "0.1"), to: cluster.root + "/slow.yml")
            let cli = try await ChildProcess(
                name: "gantry-run-cancel", executable: cluster.binaries + "/gantry", arguments: ["run", slow],
                environment: Self.environment(cluster), logFile: cluster.root + "/gantry-cancel.log")
            defer { Task { await cli.stop() } }
            let cancelledID = try await Self.submittedID(cli)
            _ = try await cli.waitForLine(containing: "tick 2", timeout: .seconds(60))
            let (cancelStatus, _) = try await cluster.request(.POST, "/v1/pipelines/\(cancelledID)/cancel")
            #expect(cancelStatus == 202)
            let cancelStatusExit = try await cli.waitForExit(timeout: .seconds(60))
            #expect(cancelStatusExit == .exited(1), "\(cli.output)")
            #expect(cli.output.contains("pipeline \(cancelledID) cancelled"), "\(cli.output)")

            // The log from a byte offset, and offsets out of range refused.
            let failedPipeline = try #require(
                try await Self.pipelines(cluster).first { $0.state == "failed" }, "the failed pipeline is listed")
            let job = try #require(try await cluster.pipeline(failedPipeline.id).jobs.first)
            let whole = try await cluster.log(job.id)
            let (tailStatus, tail) = try await cluster.request(.GET, "/v1/jobs/\(job.id)/log?offset=6")
            #expect(tailStatus == 200 && tail == whole.dropFirst(6), "\(String(decoding: tail, as: UTF8.self))")
            let (endStatus, end) = try await cluster.request(.GET, "/v1/jobs/\(job.id)/log?offset=\(whole.count)&follow=1")
            #expect(endStatus == 200 && end.isEmpty)
            for bad in ["\(whole.count + 1)", "-1", "x", "99999999999999999999"] {
                let (status, _) = try await cluster.request(.GET, "/v1/jobs/\(job.id)/log?offset=\(bad)")
                #expect(status == 400, "offset \(bad)")
            }

            // `gantry pipelines`: both, newest first; filtered; paged.
            let listed = try await Self.gantry(cluster, ["pipelines"])
            #expect(listed.status == .exited(0), "\(listed.output)")
            let rows = listed.output.split(separator: "\n").filter { !$0.hasPrefix("PIPELINE") }
            #expect(rows.count == 3 && rows[0].hasPrefix(cancelledID) && rows[0].contains("cancelled"), "\(listed.output)")
            #expect(rows[1].hasPrefix(interruptedID), "\(listed.output)")
            #expect(rows[2].hasPrefix(failedPipeline.id) && rows[2].contains("failed") && rows[2].contains("ago"), "\(listed.output)")
            let onlyFailed = try await Self.gantry(cluster, ["pipelines", "--state", "failed"])
            #expect(onlyFailed.output.contains(failedPipeline.id) && !onlyFailed.output.contains(cancelledID), "\(onlyFailed.output)")
            let paged = try await Self.gantry(cluster, ["pipelines", "--limit", "1"])
            #expect(paged.output.contains(cancelledID) && paged.output.contains("more with --cursor"), "\(paged.output)")
            let shown = try await Self.gantry(cluster, ["pipeline", failedPipeline.id])
            #expect(shown.status == .exited(0) && shown.output.contains(job.id) && shown.output.contains("broken"), "\(shown.output)")
        }
    }

    static func pipelines(_ cluster: TestCluster) async throws -> [API.PipelineSummary] {
        let (_, data) = try await cluster.request(.GET, "/v1/pipelines")
        return try API.decoder.decode(API.PipelineList.self, from: data).pipelines
    }
}
