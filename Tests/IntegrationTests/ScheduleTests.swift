import Foundation
import GantryProtocol
import NIOHTTP1
import Testing

/// A project's cron schedule with the real binaries: each minute's tick builds the
/// branch's head once, also when the coordinator is killed right after a tick and
/// started again.
@Suite("Scheduled builds", .timeLimit(.minutes(6)))
struct ScheduleTests {
    static let coordinatorArguments = ["--git-allow-file-urls"]

    static func runs(_ cluster: TestCluster) async throws -> [API.ScheduleRun] {
        let (_, data) = try await cluster.request(.GET, "/v1/projects/app/schedules")
        return try API.decoder.decode(API.ScheduleList.self, from: data).schedules.first?.runs ?? []
    }

    static func bootstrapJobs(_ cluster: TestCluster) async throws -> [API.Job] {
        let (_, data) = try await cluster.request(.GET, "/v1/jobs?limit=1000")
        return try API.decoder.decode([API.Job].self, from: data).filter { $0.key == "pipeline-upload" }
    }

    @Test func eachTickBuildsOnceAcrossACoordinatorKill() async throws {
        try await TestCluster.with("schedules", coordinatorArguments: Self.coordinatorArguments) { cluster in
            let (url, commit) = try await WebhookTests.repository(
                cluster, pipeline: "steps:\n  - key: nightly\n    command: \"echo nightly at $GANTRY_COMMIT\"\n")
            try await cluster.startAgent(
                slot: "1", extraArguments: ["--git-allow-file-urls"], environment: PipelineUploadTests.agentEnvironment(cluster))
            let (created, output) = try await WebhookTests.gantry(cluster, ["project", "create", "app", "--repository", url])
            #expect(created, "\(output)")
            let (bad, badOutput) = try await WebhookTests.gantry(cluster, ["schedule", "add", "app", "--cron", "61 * * * *"])
            #expect(!bad && badOutput.contains("minute"), "\(badOutput)")
            let (added, addOutput) = try await WebhookTests.gantry(
                cluster, ["schedule", "add", "app", "--cron", "* * * * *", "--branch", "main", "--json"])
            #expect(added, "\(addOutput)")

            // The first tick (within a minute) builds the branch's head.
            try await waitUntil("the first tick", timeout: .seconds(90)) {
                try await Self.runs(cluster).contains { $0.pipelineId != nil }
            }
            let first = try #require(try await Self.runs(cluster).first { $0.pipelineId != nil })
            // Killed right after it, and started again: the tick is not built a second time.
            try await cluster.killCoordinator()
            try await cluster.startCoordinator(extraArguments: Self.coordinatorArguments)
            let pipeline = try await cluster.waitForPipeline(try #require(first.pipelineId), timeout: .seconds(120))
            #expect(pipeline.state == "succeeded" && pipeline.commit == commit && pipeline.branch == "main", "\(pipeline)")
            #expect(pipeline.source == "schedule")
            let nightly = try #require(pipeline.jobs.first { $0.key == "nightly" })
            #expect(String(decoding: try await cluster.log(nightly.id), as: UTF8.self).contains("nightly at \(commit)"))

            // The next tick builds once more; every tick so far built exactly one pipeline.
            try await waitUntil("the next tick", timeout: .seconds(90)) {
                try await Self.runs(cluster).filter { $0.pipelineId != nil }.count >= 2
            }
            let runs = try await Self.runs(cluster)
            let ticks = runs.filter { $0.pipelineId != nil }
            #expect(Set(ticks.map(\.tick)).count == ticks.count, "one run per tick: \(runs)")
            #expect(Set(ticks.compactMap(\.pipelineId)).count == ticks.count)
            let bootstraps = try await Self.bootstrapJobs(cluster)
            #expect(bootstraps.count == ticks.count, "one pipeline per tick: \(bootstraps.count) for \(ticks.count) ticks")
            #expect(runs.allSatisfy { $0.error == nil }, "\(runs)")

            // Every tick is in the audit log, by the schedule.
            let (_, auditData) = try await cluster.request(.GET, "/v1/audit?object=pipeline:\(try #require(first.pipelineId))")
            let records = try API.decoder.decode(API.AuditPage.self, from: auditData).records
            #expect(records.contains { $0.action == "pipeline.trigger" && $0.actor.hasPrefix("schedule:") }, "\(records)")
        }
    }
}
