import Foundation
@testable import GantryAgent
import GantryProtocol
import Testing

/// A hostile or buggy coordinator's values are refused, never trapped on (issue 10: "the
/// same for the agent on values from the coordinator").
@Suite("Coordinator value checks", .timeLimit(.minutes(1)))
struct CoordinatorValueChecksTests {
    func lease(_ change: (inout Gantry_V1_Lease) -> Void = { _ in }) -> Gantry_V1_Lease {
        var lease = Gantry_V1_Lease.with {
            $0.jobID = "0d9e8f6a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
            $0.attempt = 1
            $0.pipelineID = "p"
            $0.stepKey = "build"
            $0.commands = ["make"]
            $0.env = ["A": "b"]
            $0.timeoutSeconds = 7 * 24 * 3600
            $0.cancelGraceSeconds = 3600
        }
        change(&lease)
        return lease
    }

    @Test func aLeaseWithinTheLimitsIsAccepted() {
        #expect(CoordinatorValueChecks.problem(with: lease()) == nil)
        #expect(CoordinatorValueChecks.problem(with: lease { $0.timeoutSeconds = 0 }) == nil)
    }

    @Test func outOfRangeDurationsAreRefusedWithAReason() throws {
        let timeout = try #require(CoordinatorValueChecks.problem(with: lease { $0.timeoutSeconds = UInt32.max }))
        #expect(timeout.contains("timeout_seconds 4294967295"))
        let grace = try #require(CoordinatorValueChecks.problem(with: lease { $0.cancelGraceSeconds = 1_000_000 }))
        #expect(grace.contains("cancel_grace_seconds"))
        #expect(CoordinatorValueChecks.problem(with: lease { $0.attempt = 0 }) != nil)
    }

    @Test func jobIDsThatWouldNameAnotherPathAreRefused() {
        for bad in ["", "..", ".", "../../etc/passwd", "a/b", ".hidden", "x\0y", String(repeating: "a", count: 129), "a b"] {
            #expect(CoordinatorValueChecks.problem(with: lease { $0.jobID = bad }) != nil, "\(bad.debugDescription)")
        }
        #expect(CoordinatorValueChecks.jobIDProblem("job-1.retry_2") == nil)
    }

    @Test func stringsThatCannotBecomeArgumentsOrEnvironmentAreRefused() {
        #expect(CoordinatorValueChecks.problem(with: lease { $0.commands = ["echo a\0b"] }) != nil)
        #expect(CoordinatorValueChecks.problem(with: lease { $0.env = ["A=B": "c"] }) != nil)
        #expect(CoordinatorValueChecks.problem(with: lease { $0.env = ["": "c"] }) != nil)
        #expect(CoordinatorValueChecks.problem(with: lease { $0.env = ["A": "c\0"] }) != nil)
        #expect(CoordinatorValueChecks.problem(with: lease { $0.branch = "main\0" }) != nil)
        #expect(CoordinatorValueChecks.problem(with: lease { $0.commands = Array(repeating: "true", count: 5000) }) != nil)
        #expect(
            CoordinatorValueChecks.problem(with: lease { $0.commands = [String(repeating: "x", count: 1024 * 1024 + 1)] })
                != nil)
    }

    @Test func secretsAreBoundedAndTheirValuesNeverAppearInTheReason() throws {
        let value = "s3cr3t-value-do-not-print"
        #expect(CoordinatorValueChecks.problem(with: lease { $0.secrets = ["DEPLOY_TOKEN": value, "_x1": value] }) == nil)
        #expect(CoordinatorValueChecks.problem(with: lease { $0.environment = "production" }) == nil)
        let tooMany = Dictionary(uniqueKeysWithValues: (0...100).map { ("S\($0)", value) })
        #expect(CoordinatorValueChecks.problem(with: lease { $0.secrets = tooMany }) != nil)
        for name in ["", "1ABC", "A-B", "A=B", "A B", "Ä", "A\0", String(repeating: "A", count: 256)] {
            let reason = try #require(CoordinatorValueChecks.problem(with: lease { $0.secrets = [name: value] }), "\(name.debugDescription)")
            #expect(!reason.contains(value))
        }
        #expect(CoordinatorValueChecks.problem(with: lease { $0.secrets = [String(repeating: "A", count: 255): value] }) == nil)
        for bad in [value + "\0", String(repeating: "x", count: 64 * 1024 + 1)] {
            let reason = try #require(CoordinatorValueChecks.problem(with: lease { $0.secrets = ["TOKEN": bad] }))
            #expect(reason.contains("TOKEN") && !reason.contains(value) && reason.count < 200)
        }
        let big = String(repeating: "y", count: 64 * 1024)
        let total = Dictionary(uniqueKeysWithValues: (0..<17).map { ("S\($0)", big) })
        #expect(CoordinatorValueChecks.problem(with: lease { $0.secrets = total })?.contains("in all") == true)
        #expect(CoordinatorValueChecks.problem(with: lease { $0.environment = "prod\0" }) != nil)
    }

    @Test func welcomeTimingIsCheckedAndClampedNeverTrapped() throws {
        let normal = try CoordinatorValueChecks.timing(
            of: .with {
                $0.heartbeatIntervalMs = 5000
                $0.leaseTtlMs = 15000
            }, override: nil)
        #expect(normal.heartbeat == .seconds(5) && normal.silenceLimit == .seconds(15))
        // Zero (unset) keeps the 100 ms floor; a TTL below three heartbeats is raised.
        let zero = try CoordinatorValueChecks.timing(of: .with { _ in }, override: nil)
        #expect(zero.heartbeat == .milliseconds(100) && zero.silenceLimit == .milliseconds(300))
        #expect(throws: AgentError.self) {
            try CoordinatorValueChecks.timing(of: .with { $0.heartbeatIntervalMs = UInt32.max }, override: nil)
        }
        #expect(throws: AgentError.self) {
            try CoordinatorValueChecks.timing(of: .with { $0.leaseTtlMs = UInt32.max }, override: .seconds(1))
        }
    }

    @Test func logOffsetsBeyondIntAreClampedAndTheStreamerIgnoresThem() async throws {
        #expect(CoordinatorValueChecks.offset(UInt64.max) == Int.max)
        #expect(CoordinatorValueChecks.offset(1 << 63) == Int.max)
        #expect(CoordinatorValueChecks.offset(42) == 42)
        let path = NSTemporaryDirectory() + "gantry-checks-\(UUID().uuidString).log"
        let spool = try LogSpool(path: path)
        defer { spool.remove() }
        try spool.append("hello\n")
        let streamer = LogStreamer(jobID: "j", attempt: 1, spool: spool, upload: { _ in true })
        await streamer.rewind(to: CoordinatorValueChecks.offset(UInt64.max))
        #expect(await streamer.acknowledgedOffset == 6)
        await streamer.acknowledged(offset: CoordinatorValueChecks.offset(UInt64.max))
        #expect(await streamer.acknowledgedOffset == 6)
    }

    @Test func coordinatorTextIsEscapedForTheLog() {
        #expect(CoordinatorValueChecks.loggable("a\nforged line") == "a\\u{a}forged line")
        #expect(CoordinatorValueChecks.loggable(String(repeating: "x", count: 600)).count == 513)
    }
}
