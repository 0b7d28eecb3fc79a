import Foundation
import GantryCoordinator
import GantryProtocol
import Hummingbird

extension Dashboard {
    /// `/ui/pipelines/{id}`: the steps as a graph with their state, agent, duration and
    /// attempt, and the pipeline's buttons. `pipeline.js` keeps the boxes current.
    func pipelinePage(_ request: Request, _ context: GantryRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        let id = try context.parameter("id")
        guard id.utf8.count <= 128, let pipeline = try await core.pipeline(id: id) else {
            return notFound(context, "There is no pipeline \(id.logSafe(maximum: 80)).")
        }
        var page = DashboardPage.layout(context, nav: "Pipelines")
        page.merge(Self.pipelineView(pipeline, now: Date())) { $1 }
        return DashboardPage.html(templates.render(page, "pipeline"), since: start)
    }

    /// The template's fields for `pipeline`: separate from the request so the benchmark
    /// and the tests render a 1,000-job pipeline without a server.
    static func pipelineView(_ pipeline: API.Pipeline, now: Date) -> [String: Any] {
        var indexByID: [String: Int] = [:]
        var indexesByKey: [String: [Int]] = [:]
        for (index, job) in pipeline.jobs.enumerated() {
            indexByID[job.id] = index
            indexesByKey[job.key, default: []].append(index)
        }
        // A dependency names a job, or a step: every job of a matrix step.
        let dependencies = pipeline.jobs.map { job in
            job.dependsOn.flatMap { indexByID[$0].map { [$0] } ?? indexesByKey[$0] ?? [] }
        }
        let layout = StepGraphLayout(dependencies: dependencies)
        let terminal: Set<String> = ["succeeded", "failed", "cancelled", "timed_out", "skipped"]
        let jobs: [[String: Any]] = pipeline.jobs.enumerated().map { index, job in
            let node = layout.nodes[index]
            var view: [String: Any] = [
                "id": job.id, "key": job.key, "name": job.name, "state": job.state, "attempt": job.attempt,
                "x": node.x, "y": node.y,
                "duration": DashboardPage.duration(job.startedAt.map { (job.finishedAt ?? now).timeIntervalSince($0) }),
                "active": !terminal.contains(job.state),
                "retryable": terminal.contains(job.state) && job.state != "succeeded" && job.state != "skipped",
            ]
            if let agent = job.agentId { view["agent"] = agent }
            if layout.edges.isEmpty, !dependencies[index].isEmpty {
                view["dependsOnText"] = dependencies[index].prefix(5).map { pipeline.jobs[$0].key }.joined(separator: ", ")
                    + (dependencies[index].count > 5 ? " +\(dependencies[index].count - 5)" : "")
            }
            return view
        }
        var view: [String: Any] = [
            "id": pipeline.id, "state": pipeline.state, "repository": pipeline.repository, "branch": pipeline.branch,
            "commit": pipeline.commit, "createdAt": DashboardPage.time(pipeline.createdAt), "jobCount": pipeline.jobs.count,
            "running": pipeline.state == "running", "jobs": jobs, "edges": layout.edges.map { ["d": $0] },
            "width": layout.width, "height": layout.height, "edgeCount": layout.edgeCount,
            "edgesOmitted": layout.edges.isEmpty && layout.edgeCount > 0,
            "blocked": pipeline.jobs.filter { $0.state == "blocked" }.map {
                ["key": $0.key, "name": $0.name, "pipelineID": pipeline.id] as [String: Any]
            },
        ]
        if let tag = pipeline.tag { view["tag"] = tag }
        if let message = pipeline.message { view["message"] = message }
        return view
    }
}
