import Foundation
@testable import GantryCoordinator
import GantryPipeline
import GantryProtocol
import Testing

/// Checkout in the coordinator (issue 13): lease field 17 from the job row and its
/// pipeline, old agents never matched to a lease that uses version-4 fields, and the
/// agent's failure code stored with the job.
extension JobLifecycleTests {
    static let repository = "https://git.example.com/app.git"
    static let commit = "9fceb02d0ae598e95dc970b74767f19372d61af8"

    /// An agent that negotiated `version` at its handshake (its Hello offers 1...version).
    mutating func connect(_ id: String, protocolVersion version: UInt32, at seconds: Double = 0) throws {
        let hello = Gantry_V1_Hello.with {
            $0.agentID = id
            $0.capacity = 1
            $0.minVersion = 1
            $0.maxVersion = version
        }
        _ = try lifecycle.agentConnected(hello, now: Self.at(seconds), wallClock: Self.wall(seconds)).get()
    }

    mutating func submitWithSource(_ yaml: String, repository: String = repository, commit: String = commit) throws -> [StoredJob] {
        var request = API.SubmitPipeline(yaml: yaml)
        request.repository = repository
        request.commit = commit
        return try submitJobs(yaml, request: request).1
    }

    @Test mutating func leaseCarriesTheStepsCheckout() throws {
        try connect("a/1", protocolVersion: ProtocolVersion.current)
        _ = try submitWithSource(
            """
            steps:
              - {key: plain, command: make}
              - {key: shallow, command: make, checkout: {depth: 1, submodules: true, path: src}}
              - {key: none, command: make, checkout: false}
            """)
        var byKey: [String: Gantry_V1_Lease] = [:]
        var time = 1.0
        while byKey.count < 3, let lease = ready("a/1", at: time) {
            byKey[lease.stepKey] = lease
            _ = end(lease, at: time)
            time += 1
        }
        let plain = try #require(byKey["plain"])
        #expect(plain.hasCheckout && plain.checkout.enabled && plain.checkout.depth == 0 && plain.checkout.path.isEmpty)
        #expect(plain.repository == Self.repository && plain.commit == Self.commit)
        let shallow = try #require(byKey["shallow"])
        #expect(shallow.checkout.depth == 1 && shallow.checkout.submodules && shallow.checkout.path == "src")
        let none = try #require(byKey["none"])
        #expect(!none.hasCheckout)
    }

    @Test mutating func noRepositoryOrNoCommitMeansNoCheckout() throws {
        try connect("a/1", protocolVersion: ProtocolVersion.current)
        _ = try submitWithSource("steps:\n  - command: make\n", repository: "")
        let first = try #require(ready("a/1", at: 1))
        #expect(!first.hasCheckout)
        _ = end(first, at: 1)
        _ = try submitWithSource("steps:\n  - command: make\n", commit: "")
        let second = try #require(ready("a/1", at: 2))
        #expect(!second.hasCheckout)
    }

    @Test mutating func anOldAgentIsNeverLeasedAJobThatNeedsVersionFour() throws {
        try connect("old/1", protocolVersion: 3)
        let jobs = try submitWithSource("steps:\n  - {key: build, command: make}\n  - {key: lint, command: lint, checkout: false}\n")
        // The version-3 agent gets only the job without a checkout; the other waits.
        let lease = try #require(ready("old/1", at: 1))
        #expect(lease.stepKey == "lint" && !lease.hasCheckout)
        _ = end(lease, on: "old/1", at: 1)
        #expect(ready("old/1", at: 2) == nil)
        let build = try #require(jobs.first { $0.key == "build" })
        #expect(lifecycle.scheduler.queue.map(\.id) == [build.id])
        #expect(lifecycle.scheduler.queue.first?.minimumProtocol == 4)
        // A current agent that arrives takes it.
        try connect("new/1", protocolVersion: ProtocolVersion.current, at: 3)
        let taken = try #require(ready("new/1", at: 3))
        #expect(taken.jobID == build.id && taken.hasCheckout)
    }

    @Test func everyVersionFourFieldNeedsVersionFour() {
        #expect(Gantry_V1_Lease().minimumProtocolVersion == ProtocolVersion.minimum)
        #expect(Gantry_V1_Lease.with { $0.checkout = .with { $0.enabled = false } }.minimumProtocolVersion == 1)
        let uses: [Gantry_V1_Lease] = [
            .with { $0.checkout = .with { $0.enabled = true } },
            .with { $0.artifactPaths = ["dist/*"] },
            .with { $0.artifactsAlways = true },
            .with { $0.downloads = [.with { $0.step = "build"; $0.path = "dist/*" }] },
            .with { $0.cache = .with { $0.key = "k" } },
        ]
        for lease in uses { #expect(lease.minimumProtocolVersion == 4) }
    }

    @Test mutating func theAgentsFailureCodeIsStoredAndClearedByTheNextAttempt() throws {
        try connect("a/1", protocolVersion: ProtocolVersion.current)
        _ = try submitWithSource("steps:\n  - {key: build, command: make, retry: {automatic: [{exit_status: \"*\", limit: 1}]}}\n")
        let lease = try #require(ready("a/1", at: 1))
        var report = Self.finished(lease, .failed, exit: -1)
        report.failure = JobFailureCode.checkoutFailed
        report.message = "checkout failed: commit is not in the repository"
        let failed = lifecycle.jobFinished(report, from: "a/1", alreadyFinished: nil, now: Self.wall(1))
        // Retried: the row keeps the failure of the attempt that ended...
        #expect(Self.jobWrites(failed).last?.failure == JobFailureCode.checkoutFailed)
        // ...and the next attempt starts without one, then ends with its own.
        let again = lifecycle.agentReady("a/1", slots: 1, now: Self.at(2), wallClock: Self.wall(2))
        #expect(Self.jobWrites(again).last?.failure == nil)
        let second = try #require(Self.leases(again, to: "a/1").first)
        report.attempt = second.attempt
        let final = lifecycle.jobFinished(report, from: "a/1", alreadyFinished: nil, now: Self.wall(3))
        let row = try #require(Self.jobWrites(final).last)
        #expect(row.state == .failed && row.failure == JobFailureCode.checkoutFailed)
        #expect(CoordinatorCore.view(row).failure == JobFailureCode.checkoutFailed)
    }

    @Test func failureCodesAreValidatedOnTheWire() throws {
        func finished(_ failure: String) -> Gantry_V1_Envelope {
            .with {
                $0.jobFinished = .with {
                    $0.jobID = "j"
                    $0.attempt = 1
                    $0.failure = failure
                }
            }
        }
        for good in ["", "checkout_failed", "download_failed", "artifact_upload_failed", "some_new_code"] {
            #expect(throws: Never.self) { try MessageValidation.validate(finished(good), authenticated: true) }
        }
        for bad in ["Checkout", "checkout-failed", "a b", "x\n", String(repeating: "a", count: 65)] {
            #expect(throws: ProtocolError.self) { try MessageValidation.validate(finished(bad), authenticated: true) }
        }
    }
}

/// Every step checks out the submitted commit on its own, so with a repository it must be
/// a full commit id: a name would be resolved once per step.
@Suite struct SubmittedCommitTests {
    static func submission(_ commit: String, repository: String? = "https://git.example.com/app.git") -> API.SubmitPipeline {
        API.SubmitPipeline(yaml: "", repository: repository, commit: commit)
    }

    @Test func aRepositoryNeedsAFullCommitID() throws {
        try SubmissionCheck.check(Self.submission(String(repeating: "9f", count: 20)))
        try SubmissionCheck.check(Self.submission(String(repeating: "0A", count: 32)))
        try SubmissionCheck.check(Self.submission("main", repository: nil))
        try SubmissionCheck.check(Self.submission("main", repository: ""))
        for commit in ["main", "9fceb02", String(repeating: "g", count: 40), "-" + String(repeating: "a", count: 39), "HEAD~1"] {
            #expect(throws: PipelineError.self, "\(commit)") { try SubmissionCheck.check(Self.submission(commit)) }
        }
    }

    /// The agents' repository rule applies at submission: a URL no agent would check out
    /// is refused with the submission, without echoing it (it may hold a token).
    @Test func aRepositoryNoAgentWouldCheckOutIsRefusedAtSubmission() throws {
        let commit = String(repeating: "ab", count: 20)
        for url in [
            "https://git.example.com/app.git", "ssh://git@git.example.com/app.git", "git@git.example.com:app.git",
            "git://127.0.0.1/app.git", "file:///srv/git/app.git", "/srv/git/app.git",
        ] {
            try SubmissionCheck.check(Self.submission(commit, repository: url))
        }
        for url in [
            "ext::sh -c touch% /tmp/pwned", "fd::3", "ftp://git.example.com/app.git", "-uhttps://x", "https:///app.git",
            "https://-oProxyCommand=x/app", "https://user:s3cret-token@git.example.com/a b",
        ] {
            do {
                try SubmissionCheck.check(Self.submission(commit, repository: url))
                Issue.record("accepted \(url)")
            } catch {
                #expect(error.message.hasPrefix("`repository` "), "\(error.message)")
                #expect(!error.message.contains("s3cret-token"), "\(error.message)")
            }
        }
    }
}
