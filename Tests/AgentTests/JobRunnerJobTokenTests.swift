import Foundation
@testable import GantryAgent
import GantryProtocol
import Testing

/// What a lease's job token and API endpoint become in the step: variables (set only
/// when present), the token masked in the log, and a readable copy of the pinned CA
/// next to the work dir (not in it) for an API with the coordinator's certificate,
/// removed afterwards.
@Suite("Job runner: job token", .timeLimit(.minutes(1)))
final class JobRunnerJobTokenTests {
    let root = NSTemporaryDirectory() + "gantry-runner-token-\(UUID().uuidString)"
    let token = "gjt_job-x.1." + String(repeating: "ab", count: 32)

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    func run(_ commands: [String], apiURL: String, coordinatorCA: Bool, withToken: Bool = true) async throws -> (JobRunner.Result, String) {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let ca = root + "/ca.pem"
        try Data("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".utf8).write(to: URL(fileURLWithPath: ca))
        let spec = JobRunner.Spec(lease: .with {
            $0.jobID = "job-\(UUID().uuidString)"
            $0.attempt = 1
            $0.pipelineID = "p"
            $0.stepKey = "s"
            $0.commands = commands
            $0.jobToken = withToken ? token : ""
            $0.apiURL = apiURL
            $0.apiUsesCoordinatorCa = coordinatorCA
        })
        let runner = JobRunner(agentID: "h/1", workRoot: root + "/work", keepWorkDirs: false, caCertificate: ca)
        let spool = try LogSpool(path: root + "/spool-\(UUID().uuidString).log")
        defer { spool.remove() }
        let result = await runner.run(spec, spool: spool, control: ProcessGroupControl(jobID: spec.jobID, attempt: 1, grace: .seconds(1))) {}
        #expect(!FileManager.default.fileExists(atPath: runner.caCopyPath(for: spec)), "the CA copy is removed")
        return (result, String(decoding: try spool.read(from: 0, count: spool.length), as: UTF8.self))
    }

    @Test func theTokenIsExportedAndMaskedAndTheCAIsCopiedOutsideTheWorkDir() async throws {
        let (result, output) = try await run(
            [
                "echo \"t=$GANTRY_JOB_TOKEN u=$GANTRY_API_URL\"",
                "test -r \"$GANTRY_CA_FILE\" && grep -q BEGIN \"$GANTRY_CA_FILE\"",
                "case \"$GANTRY_CA_FILE\" in \"$GANTRY_WORK_DIR\"/*) exit 7;; esac",
                "stat -c %a \"$GANTRY_CA_FILE\"",
            ], apiURL: "https://ci.example:7080", coordinatorCA: true)
        #expect(result.outcome == .succeeded, "\(output)")
        #expect(output.hasPrefix("t=*** u=https://ci.example:7080\n") && !output.contains(token), "\(output)")
        #expect(output.hasSuffix("644\n"), "\(output)")
    }

    @Test func nothingIsSetThatTheLeaseDoesNotCarry() async throws {
        let (result, output) = try await run(
            ["echo \"${GANTRY_JOB_TOKEN-unset} ${GANTRY_API_URL-unset} ${GANTRY_CA_FILE-unset}\""], apiURL: "", coordinatorCA: false,
            withToken: false)
        #expect(result.outcome == .succeeded && output == "unset unset unset\n", "\(output)")
        // Plain http, or an operator's certificate: no CA copy.
        let (_, plain) = try await run(["echo ${GANTRY_CA_FILE-unset}"], apiURL: "http://127.0.0.1:7080", coordinatorCA: true)
        #expect(plain == "unset\n")
        let (_, operatorCertificate) = try await run(["echo ${GANTRY_CA_FILE-unset}"], apiURL: "https://ci.example", coordinatorCA: false)
        #expect(operatorCertificate == "unset\n")
    }
}
