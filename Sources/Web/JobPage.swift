import Foundation
import GantryCoordinator
import GantryProtocol
import HTTPTypes
import Hummingbird
import NIOCore

extension Dashboard {
    /// `/ui/jobs/{id}[?from=start]`: the job, its attempts and its log's live tail.
    func jobPage(_ request: Request, _ context: GantryRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        let id = try context.parameter("id")
        guard id.utf8.count <= 128, let job = try await core.job(id: id) else {
            return notFound(context, "There is no job \(id.logSafe(maximum: 80)).")
        }
        let attempts = try core.store.attempts(jobID: id)
        var page = DashboardPage.layout(context, nav: "Pipelines")
        page["id"] = job.id
        page["name"] = job.name
        page["key"] = job.key
        page["state"] = job.state.rawValue
        page["attempt"] = job.attempt
        page["agent"] = job.agentId ?? ""
        page["pipelineID"] = job.pipelineId
        page["logBytes"] = job.logLength
        page["active"] = !job.isTerminal
        page["from"] = request.uri.queryParameters.get("from") == "start" ? "start" : "tail"
        page["attempts"] = attempts.map { attempt -> [String: Any] in
            var row: [String: Any] = ["attempt": attempt.attempt, "agentId": attempt.agentId, "jobID": job.id]
            row["state"] = attempt.state.rawValue
            row["exitStatus"] = attempt.exitStatus.map(String.init) ?? ""
            row["reason"] = attempt.reason ?? ""
            return row
        }
        return DashboardPage.html(templates.render(page, "job"), since: start)
    }

    /// `/ui/jobs/{id}/events`: the log as server-sent events (`LogEventStream`).
    func logEvents(_ request: Request, _ context: GantryRequestContext) async throws -> Response {
        let id = try context.parameter("id")
        guard id.utf8.count <= 128, try await core.job(id: id) != nil else {
            return Response(status: .notFound)
        }
        guard
            let start = LogEventStream.Start(
                lastEventID: request.headers[HTTPField.Name("Last-Event-ID")!], from: request.uri.queryParameters.get("from"))
        else { return Response(status: .badRequest) }
        guard streams.open() else {
            return Response(status: .serviceUnavailable, headers: [.retryAfter: "5"])
        }
        let stream = LogEventStream(core: core, jobID: id, start: start, lines: tailLines)
        let streams = self.streams
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody { writer in
                defer { streams.close() }
                do {
                    try await stream.run { try await writer.write(ByteBuffer(string: $0)) }
                } catch is LogEventStream.Busy {
                    // The browser reconnects after `retry` (EventSource does so on its own).
                    try await writer.write(ByteBuffer(string: "retry: 5000\nevent: busy\ndata: {}\n\n"))
                }
                try await writer.finish(nil)
            })
    }
}
