import Foundation
@testable import GantryAgent
import GantryProtocol
import Testing

@Suite("Job runner")
struct JobRunnerTests {
    let root = NSTemporaryDirectory() + "gantry-runner-\(UUID().uuidString)"

    func spec(_ commands: [String], timeout: Duration? = nil, env: [String: String] = [:]) -> JobRunner.Spec {
        var spec = JobRunner.Spec(lease: .with {
            $0.jobID = "job-1"
            $0.attempt = 2
            $0.pipelineID = "p"
            $0.stepKey = "build"
            $0.commands = commands
            $0.env = env
        })
        spec.timeout = timeout
        return spec
    }

    func run(_ spec: JobRunner.Spec, grace: Duration = .seconds(1), keep: Bool = false) async throws -> (JobRunner.Result, String) {
        let runner = JobRunner(agentID: "h/1", workRoot: root, keepWorkDirs: keep)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let spool = try LogSpool(path: root + "/spool.log")
        defer { spool.remove() }
        let result = await runner.run(spec, spool: spool, control: ProcessGroupControl(grace: grace)) {}
        let output = String(decoding: try spool.read(from: 0, count: spool.length), as: UTF8.self)
        return (result, output)
    }

    @Test func mergesStdoutAndStderrInOrderAndStopsAtTheFirstFailure() async throws {
        let (result, output) = try await run(spec(["echo one; echo two >&2; echo three", "exit 3", "echo never"]))
        #expect(result.outcome == .failed && result.exitStatus == 3)
        #expect(output == "one\ntwo\nthree\n")
    }

    @Test func givesACleanEnvironmentWithGantryVariablesAndAFreshWorkDir() async throws {
        setenv("GANTRY_TEST_AGENT_SECRET", "do-not-leak", 1)
        defer { unsetenv("GANTRY_TEST_AGENT_SECRET") }
        let (result, output) = try await run(
            spec(["echo \"$GANTRY_JOB_ID $GANTRY_ATTEMPT $GANTRY_STEP $MINE ${GANTRY_TEST_AGENT_SECRET:-unset}\"; pwd; ls -A | wc -l"],
                 env: ["MINE": "x"]))
        #expect(result.outcome == .succeeded)
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines[0] == "job-1 2 build x unset")
        #expect(lines[1] == root + "/job-1-2")
        #expect(lines[2].trimmingCharacters(in: .whitespaces) == "0")
        #expect(!FileManager.default.fileExists(atPath: root + "/job-1-2"), "work dir removed afterwards")
    }

    @Test func keepsTheWorkDirOnRequest() async throws {
        _ = try await run(spec(["touch artifact"]), keep: true)
        #expect(FileManager.default.fileExists(atPath: root + "/job-1-2/artifact"))
    }

    @Test func timeoutStopsTheWholeProcessGroupIncludingATermIgnoringChild() async throws {
        let marker = root + "/grandchild.pid"
        let started = ContinuousClock.now
        let (result, output) = try await run(
            spec(["echo started; (trap '' TERM; echo $$ > \(marker); sleep 60) & sleep 60"], timeout: .milliseconds(300)),
            grace: .milliseconds(300))
        #expect(result.outcome == .timedOut)
        #expect(output.hasPrefix("started\n"))
        #expect(ContinuousClock.now - started < .seconds(10))
        let pid = try #require(Int32(try String(contentsOfFile: marker, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        // The TERM-ignoring subshell was killed by the SIGKILL that follows the grace.
        try await waitFor { kill(pid, 0) != 0 }
    }

    @Test func reportsAKillingSignal() async throws {
        let (result, _) = try await run(spec(["kill -9 $$"]))
        #expect(result.outcome == .failed && result.signal == 9)
    }
}

@Suite("Backoff")
struct BackoffTests {
    @Test func growsExponentiallyWithinBounds() {
        var backoff = Backoff(minimum: .milliseconds(100), maximum: .seconds(2))
        var delays: [Duration] = []
        for _ in 0..<12 { delays.append(backoff.next()) }
        #expect(delays.allSatisfy { $0 >= .milliseconds(100) && $0 <= .seconds(2) })
        backoff.reset()
        #expect(backoff.next() <= .milliseconds(100))
    }
}
