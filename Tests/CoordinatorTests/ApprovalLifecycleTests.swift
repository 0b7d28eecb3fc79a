import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Testing

/// Approval gates in the lifecycle: a block waits `blocked` without an agent; approved it
/// releases what follows with its fields stored in the same turn; rejected it fails the
/// pipeline and lets `on_failure` steps run.
extension JobLifecycleTests {
    static let gated = """
        steps:
          - {key: build, command: make}
          - block: "Deploy to production?"
            key: approve
            depends_on: build
            fields:
              - {key: channel, select: Channel, options: [stable, beta], required: true}
              - {key: notes, text: "Release notes", default: none}
          - {key: deploy, command: ./deploy, depends_on: approve}
          - {key: rollback, command: ./rollback, depends_on: approve, when: on_failure}
        """

    @Test mutating func aBlockWaitsWithoutAnAgentAndApprovalReleasesWhatFollows() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs(Self.gated)
        #expect(jobs[1].block?.fields.map(\.key) == ["channel", "notes"] && jobs[1].commands.isEmpty)
        let (built, ran) = drain("a/1")
        #expect(ran == ["build"], "the block is never leased")
        #expect(Self.rows([submitted] + built)[jobs[1].id]?.state == .blocked)
        #expect(lifecycle.scheduler.queue.isEmpty && lifecycle.scheduler.leases.isEmpty)
        let block = try lifecycle.blockedJob(pipeline: jobs[0].pipelineId, step: nil).get()
        #expect(block.id == jobs[1].id)
        let fields = try BlockFieldValues.resolve(try #require(block.block), given: ["channel": "beta"]).get()
        #expect(fields == ["channel": "beta", "notes": "none"], "a field left out takes its default")
        let rows = fields.map { StoredMetaData(pipelineId: block.pipelineId, key: $0.key, value: $0.value, jobId: block.id, updatedAt: Self.wall0) }
        let decision = lifecycle.decide(block.id, approved: true, by: "alice", reason: "ship it", metaData: rows, now: Self.wall(5))
        let (decided, output) = try #require(decision)
        #expect(decided.state == .succeeded && decided.reason == "approved by alice: ship it")
        guard case .setMetaData(let stored)? = output.writes.writes.first else {
            Issue.record("the fields are not the turn's first write: \(output.writes.writes)")
            return
        }
        #expect(Set(stored.map(\.key)) == ["channel", "notes"])
        // The agent left idle by `drain` takes the released step in the same turn.
        let deploy = try #require(Self.leases(output, to: "a/1").first)
        #expect(deploy.stepKey == "deploy")
        let after = end(deploy, at: 6)
        #expect(Self.rows([output, after])[jobs[3].id]?.state == .skipped, "rollback: nothing failed")
        #expect(lifecycle.pipelines.isEmpty)
        #expect(lifecycle.decide(block.id, approved: false, by: "bob", reason: nil, metaData: [], now: Self.wall(6)) == nil)
    }

    @Test mutating func aRejectedBlockFailsThePipelineAndOnFailureRuns() throws {
        try connect("a/1", ready: false)
        let (submitted, jobs) = try submitJobs(Self.gated)
        let (built, _) = drain("a/1")
        let decision = lifecycle.decide(jobs[1].id, approved: false, by: "bob", reason: "not today", metaData: [], now: Self.wall(5))
        let (_, output) = try #require(decision)
        let rollback = try #require(Self.leases(output, to: "a/1").first)
        #expect(rollback.stepKey == "rollback")
        let after = end(rollback, at: 6)
        let rows = Self.rows([submitted] + built + [output, after])
        let final = jobs.map { rows[$0.id]! }
        #expect(final.map(\.state) == [.succeeded, .failed, .skipped, .succeeded])
        #expect(final[1].reason == "rejected by bob: not today" && final[1].outcome == .failed)
        #expect(CoordinatorCore.view(Self.pipeline(of: jobs), jobs: final).state == "failed")
    }

    @Test func fieldsAreCheckedAgainstTheBlock() throws {
        let block = BlockStep(
            prompt: "Go?",
            fields: [BlockField(key: "channel", label: "Channel", required: true, options: ["stable", "beta"])])
        #expect(BlockFieldValues.resolve(block, given: [:]).map { $0 } == .failure(.invalidFields(
            "field `channel` (Channel) is required: pass --field channel=VALUE")))
        guard case .failure(.invalidFields(let unknown)) = BlockFieldValues.resolve(block, given: ["channel": "beta", "x": "1"]) else {
            Issue.record("an unknown field was accepted")
            return
        }
        #expect(unknown.contains("not a field"))
        guard case .failure(.invalidFields(let option)) = BlockFieldValues.resolve(block, given: ["channel": "nightly"]) else {
            Issue.record("a value outside the options was accepted")
            return
        }
        #expect(option.contains("must be one of stable, beta"))
    }

    @Test mutating func severalWaitingBlocksMustBeNamedAndARestartKeepsThemBlocked() throws {
        let (_, jobs) = try submitJobs(
            "steps:\n  - block: One?\n    key: one\n  - block: Two?\n    key: two\n  - {key: after, command: x, depends_on: [one, two]}\n")
        #expect(jobs.map(\.state) == [.blocked, .blocked, .waiting])
        #expect(lifecycle.blockedJob(pipeline: jobs[0].pipelineId, step: nil).map(\.id) == .failure(.ambiguous(["one", "two"])))
        #expect(lifecycle.blockedJob(pipeline: jobs[0].pipelineId, step: "two").map(\.id) == .success(jobs[1].id))
        let restarted = JobLifecycle(
            configuration: lifecycle.configuration, unfinished: jobs,
            pipelines: [jobs[0].pipelineId: PipelineProgress(pipeline: Self.pipeline(of: jobs), jobs: jobs)], now: Self.at(1))
        #expect(restarted.scheduler.queue.isEmpty)
        #expect(restarted.blockedJob(pipeline: jobs[0].pipelineId, step: "one").map(\.id) == .success(jobs[0].id))
    }

    @Test func whoMayDecideFollowsTheBlocksRule() throws {
        func principal(_ roles: [String], name: String = "someone") throws -> Principal {
            Principal(identity: name, tokenID: "t", bindings: try roles.map { try API.RoleBinding(parsing: $0) })
        }
        let open = BlockStep(prompt: "Go?")
        #expect(try !principal(["developer"]).mayDecide(open) && principal(["deployer"]).mayDecide(open))
        let staging = BlockStep(prompt: "Go?", roles: ["deployer:production"], identities: ["alice"])
        #expect(try !principal(["deployer:staging"]).mayDecide(staging))
        #expect(try principal(["deployer:production"]).mayDecide(staging) && principal(["admin"]).mayDecide(staging))
        #expect(try principal(["developer"], name: "alice").mayDecide(staging))
        let developers = BlockStep(prompt: "Go?", roles: ["developer"])
        #expect(try principal(["developer"]).mayDecide(developers) && !principal(["viewer"]).mayDecide(developers))
        #expect(!Principal.job(.init(jobID: "j", attempt: 1, pipelineID: "p")).mayDecide(developers))
    }
}
