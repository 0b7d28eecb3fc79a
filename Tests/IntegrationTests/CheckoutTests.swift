import Foundation
import GantryProtocol
import Subprocess
import Testing

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Checkout end to end with the real binaries: a pipeline submitted with a repository and
/// a commit runs its step in a checkout of that commit; a commit the repository lacks
/// fails the job as `checkout_failed`, visible through the API, and its step never runs.
@Suite("Checkout", .serialized, .timeLimit(.minutes(3)))
struct CheckoutTests {
    /// Runs `script` with `/bin/sh -e` in `directory`, git's own configuration kept out.
    @discardableResult
    static func sh(_ script: String, in directory: String) async throws -> String {
        let environment: [Environment.Key: String] = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": "/nonexistent",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "T",
            "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com",
        ]
        let result = try await Subprocess.run(
            .path("/bin/sh"), arguments: ["-e", "-c", script], environment: .custom(environment),
            workingDirectory: FilePath(directory), output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        guard result.terminationStatus.isSuccess else { throw TimedOut(description: "`\(script)`: \(result.standardError)") }
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func submit(_ cluster: TestCluster, _ yaml: String, repository: String, commit: String) async throws -> API.Pipeline {
        var request = API.SubmitPipeline(yaml: yaml, file: "checkout.yml")
        request.repository = repository
        request.commit = commit
        let (status, data) = try await cluster.request(.POST, "/v1/pipelines", body: try API.encoder.encode(request))
        guard status == 201 else { throw TimedOut(description: "submit failed \(status): \(String(decoding: data, as: UTF8.self))") }
        return try API.decoder.decode(API.Pipeline.self, from: data)
    }

    @Test func theStepReadsItsRepositoryAndAMissingCommitIsACheckoutFailure() async throws {
        try await TestCluster.with("checkout") { cluster in
            let work = cluster.root + "/source"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            try await Self.sh(
                "git -c init.defaultBranch=main init -q . && echo 'from the repository' > README && git add README "
                    + "&& git commit -q -m one", in: work)
            let commit = try await Self.sh("git rev-parse HEAD", in: work)
            let bare = cluster.root + "/source.git"
            try await Self.sh("git clone -q --bare '\(work)' '\(bare)'", in: cluster.root)
            try await cluster.startAgent(slot: "1", extraArguments: ["--git-allow-file-urls"])

            let good = try await submit(
                cluster, "steps:\n  - {key: read, command: 'cat README && git rev-parse HEAD'}\n",
                repository: "file://\(bare)", commit: commit)
            let done = try await cluster.waitForPipeline(good.id)
            let read = try #require(done.jobs.first)
            let log = String(decoding: try await cluster.log(read.id), as: UTF8.self)
            #expect(done.state == "succeeded" && read.failure == nil, "\(log)")
            #expect(log.contains("from the repository\n\(commit)\n"), "\(log)")
            #expect(log.contains("gantry: checkout: HEAD is \(commit)"))
            // The host's mirror is in the agent's state directory by default.
            let mirrors = try FileManager.default.contentsOfDirectory(atPath: cluster.agentState + "/git-mirrors")
            #expect(mirrors.contains { $0.hasSuffix(".git") })

            let missing = String(repeating: "a", count: 40)
            let bad = try await submit(
                cluster, "steps:\n  - {key: read, command: 'echo the step ran'}\n", repository: "file://\(bare)", commit: missing)
            let failed = try await cluster.waitForPipeline(bad.id)
            let job = try #require(failed.jobs.first)
            let badLog = String(decoding: try await cluster.log(job.id), as: UTF8.self)
            #expect(failed.state == "failed" && job.state == "failed")
            #expect(job.failure == JobFailureCode.checkoutFailed, "\(job)")
            #expect(job.reason?.contains("commit `\(missing)` is not in file://\(bare)") == true, "\(job.reason ?? "")")
            #expect(badLog.contains("gantry: checkout failed") && !badLog.contains("the step ran"), "\(badLog)")
            // The single job view and the listing say the same.
            #expect(try await cluster.job(job.id).failure == JobFailureCode.checkoutFailed)
            let (_, list) = try await cluster.request(.GET, "/v1/jobs?limit=10")
            let listed = try API.decoder.decode([API.Job].self, from: list)
            #expect(listed.first { $0.id == job.id }?.failure == JobFailureCode.checkoutFailed)
        }
    }
}
