import BenchKit
import Foundation

/// The dashboard scenario's report (docs/benchmarks-dashboard.md): page render times of
/// issue 16's two cases.
extension ReportWriter {
    func dashboardMarkdown() -> String {
        var out = header().replacingOccurrences(
            of: "# Benchmarks\n", with: "# Benchmarks: the web dashboard (issue 16)\n", options: .anchored)
        out += "The rest of the benchmarks are in [benchmarks.md](benchmarks.md), from their own run.\n\n"
        guard let runs = results.dashboard, !runs.isEmpty else {
            let reason = results.failures["dashboard"].map { "Not measured: the scenario failed (\($0.prefix(300)))." }
            return out + (reason ?? "Not measured in this run.") + "\n"
        }
        func merged(_ pick: (DashboardScenario.Run) -> [Double]) -> Summary? { Summary(runs.flatMap(pick)) }
        func row(_ name: String, _ server: Summary?, _ client: Summary?, _ bytes: Int?) -> String {
            "| \(name) | \(ms(server?.median)) | \(ms(server?.p95)) | \(ms(client?.median)) | \(ms(client?.p95)) | "
                + "\(bytes.map { String(format: "%.0f KiB", Double($0) / 1024) } ?? "—") |\n"
        }
        let pipeline = merged { $0.pipelinePage.serverMilliseconds }
        out += "## Targets (issue 16)\n\n"
        out += "| target | measured | verdict |\n|---|---|---|\n"
        out += "| a pipeline of 1,000 jobs renders in under 200 ms server time | median \(ms(pipeline?.median)) ms, "
            + "p95 \(ms(pipeline?.p95)) ms, max \(ms(pipeline?.maximum)) ms | "
            + "\((pipeline?.p95 ?? .infinity) < 200 ? "met" : "missed") |\n\n"
        out += "## Page render times\n\n"
        out += "Server time is the page's `Server-Timing` header (store reads and Mustache rendering); the request "
            + "is the whole GET as a client on the same machine sees it (loopback, keep-alive). "
            + "\(runs.count) run(s) × \(runs[0].pipelinePage.serverMilliseconds.count) samples.\n\n"
        out += "| page | server median | server p95 | request median | request p95 | HTML |\n|---|---|---|---|---|---|\n"
        out += row(
            "pipeline of 1,000 jobs (`/ui/pipelines/{id}`, 999 edges)", pipeline, merged { $0.pipelinePage.clientMilliseconds },
            runs[0].pipelinePage.bytes)
        out += row(
            "pipelines, first page: 50 of 51 (`/ui/pipelines`)", merged { $0.pipelinesPage.serverMilliseconds },
            merged { $0.pipelinesPage.clientMilliseconds }, runs[0].pipelinesPage.bytes)
        out += row(
            "job with a \(String(format: "%.0f", Double(runs[0].logBytes) / 1e6)) MB log (`/ui/jobs/{id}`)",
            merged { $0.logPage.serverMilliseconds }, merged { $0.logPage.clientMilliseconds }, runs[0].logPage.bytes)
        // The first view of each run counts the log's lines; later views of the finished
        // log find the count remembered (`TailLineCounter`).
        let firstView = Summary(runs.compactMap(\.tailFirstEventMilliseconds.first))
        let firstViewEnd = Summary(runs.compactMap(\.tailEndMilliseconds.first))
        let later = merged { Array($0.tailFirstEventMilliseconds.dropFirst()) }
        let laterEnd = merged { Array($0.tailEndMilliseconds.dropFirst()) }
        out += "\n## The live tail of a \(String(format: "%.0f", Double(runs[0].logBytes) / 1e6)) MB log\n\n"
        out += "| figure | median | p95 |\n|---|---|---|\n"
        out += "| first view: first `log` event (the lines before the tail counted) | \(ms(firstView?.median)) ms | \(ms(firstView?.p95)) ms |\n"
        out += "| first view: `end` event, the last 256 KiB received | \(ms(firstViewEnd?.median)) ms | \(ms(firstViewEnd?.p95)) ms |\n"
        out += "| later views: first `log` event (count remembered) | \(ms(later?.median)) ms | \(ms(later?.p95)) ms |\n"
        out += "| later views: `end` event | \(ms(laterEnd?.median)) ms | \(ms(laterEnd?.p95)) ms |\n"
        let raw = Spread(runs.map(\.rawLogSeconds))
        out += "| raw download of the whole log (`/v1/jobs/{id}/log`) | \(String(format: "%.2f", raw.median)) s | — |\n\n"
        out += """
            The log is build-log-like text (the logs scenario's generator), stored compressed as the agent sent
            it; counting the lines before the tail inflates all of it once per attempt (then it is remembered).
            The page never holds the whole log: it starts at the last 256 KiB (after a newline), numbers its
            lines by counting the newlines before it on the server, renders at most 1,500 lines per animation
            frame and keeps at most 20,000 lines in the page; "Show from the start" and the raw download
            have the rest.

            ## How to run

            ```sh
            scripts/benchmark --scenarios dashboard --no-micro    # writes this file only
            ```

            """
        return out
    }

    private func ms(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "—" }
        return String(format: value < 10 ? "%.2f" : "%.1f", value)
    }
}
