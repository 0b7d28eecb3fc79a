import ArgumentParser
import Foundation
import GantryCLIKit
import GantryProtocol

/// `gantry pipelines`: recent pipelines, newest first (`GET /v1/pipelines`).
struct Pipelines: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List pipelines, newest first.",
        discussion: """
            Columns widen to fit; ids are never cut. COMMIT shows 12 characters; --wide shows it whole, with \
            the repository and the message. More than one page is read (following the server's cursor) until \
            --limit pipelines are listed; when more remain, the cursor to pass as --cursor is printed on stderr.
            """)
    @OptionGroup var connection: Connection
    @Option(help: "Only these states, comma-separated: running, succeeded, failed, cancelled.") var state: String?
    @Option(help: "Only this branch.") var branch: String?
    @Option(help: "Only this repository.") var repository: String?
    @Option(help: "At most this many (1 to 1000).") var limit: Int = 20
    @Option(help: "Start after this cursor (printed by an earlier listing).") var cursor: String?
    @Flag(help: "Full commits, the repository and the message.") var wide = false

    /// The server's page size bound.
    static let pageLimit = 200

    func validate() throws {
        guard (1...1000).contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
        if let state {
            let allowed: Set<String> = ["running", "succeeded", "failed", "cancelled"]
            for one in state.split(separator: ",") where !allowed.contains(String(one)) {
                throw ValidationError("--state: '\(one)' is not one of running, succeeded, failed, cancelled")
            }
        }
    }

    func run() async throws {
        let client = try connection.client()
        defer { client.shutdown() }
        var pipelines: [API.PipelineSummary] = []
        var next = cursor
        // Each page brings at least one pipeline or ends the listing, and the server may
        // return short pages with a `state` filter: bounded by pages as well.
        for page in 0..<(limit + 20) {
            var query = ["limit=\(min(Self.pageLimit, limit - pipelines.count))"]
            if let state { query.append("state=" + UploadPipeline.queryEncoded(state)) }
            if let branch { query.append("branch=" + UploadPipeline.queryEncoded(branch)) }
            if let repository { query.append("repository=" + UploadPipeline.queryEncoded(repository)) }
            if let next { query.append("cursor=" + UploadPipeline.queryEncoded(next)) }
            let list: API.PipelineList = try await client.send("GET", APIRoute.listPipelines.path([:]) + "?" + query.joined(separator: "&"))
            pipelines += list.pipelines.prefix(limit - pipelines.count)
            next = list.nextCursor
            if next == nil || pipelines.count >= limit || page == limit + 19 { break }
        }
        if connection.json {
            print(String(decoding: try API.encoder.encode(API.PipelineList(pipelines: pipelines, nextCursor: next)), as: UTF8.self))
            return
        }
        for line in Self.table(pipelines, wide: wide, now: Date()).lines() { print(line) }
        if let next {
            FileHandle.standardError.write(Data("gantry: more with --cursor \(TerminalText.printable(next, limit: 500))\n".utf8))
        }
    }

    static func table(_ pipelines: [API.PipelineSummary], wide: Bool, now: Date) -> Table {
        var table = Table(
            header: ["PIPELINE", "STATE", "BRANCH", "COMMIT", "CREATED", "DURATION", "JOBS"] + (wide ? ["REPOSITORY", "MESSAGE"] : []))
        for pipeline in pipelines {
            let duration = pipeline.startedAt.map { RelativeTime.duration(Int((pipeline.finishedAt ?? now).timeIntervalSince($0))) } ?? "-"
            var row = [
                pipeline.id, pipeline.state, pipeline.branch.isEmpty ? "-" : pipeline.branch,
                pipeline.commit.isEmpty ? "-" : wide ? pipeline.commit : String(pipeline.commit.prefix(12)),
                RelativeTime.ago(pipeline.createdAt, now: now), duration, jobCounts(pipeline.jobCounts),
            ]
            if wide {
                row += [pipeline.repository.isEmpty ? "-" : pipeline.repository, pipeline.message.map { String($0.prefix(80)) } ?? "-"]
            }
            table.rows.append(row)
        }
        return table
    }

    /// `2 succeeded, 1 running`, in a fixed order of states, then any others.
    static func jobCounts(_ counts: [String: Int]) -> String {
        let order = ["running", "leased", "queued", "waiting", "blocked", "succeeded", "failed", "timed_out", "lost", "cancelled", "skipped"]
        let known = order.compactMap { state in counts[state].map { "\($0) \(state)" } }
        let others = counts.keys.filter { !order.contains($0) }.sorted().map { "\(counts[$0]!) \($0)" }
        return (known + others).prefix(12).joined(separator: ", ")
    }
}

/// `gantry pipeline PIPELINE`: one pipeline and its jobs.
struct ShowPipeline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show a pipeline and its jobs (the default: `gantry pipeline PIPELINE`).")
    @Argument(help: "Pipeline id.") var pipeline: String
    @OptionGroup var connection: Connection

    func run() async throws {
        let shown: API.Pipeline = try await connection.call("GET", APIRoute.getPipeline.path(["id": pipeline]))
        if connection.json {
            print(String(decoding: try API.encoder.encode(shown), as: UTF8.self))
            return
        }
        let now = Date()
        let state = shown.state == "cancelled" ? "cancelled" : shown.state
        var lines = [
            "pipeline   \(shown.id)",
            "state      \(state)",
            "created    \(RelativeTime.ago(shown.createdAt, now: now)) (\(ISO8601DateFormatter().string(from: shown.createdAt)))",
        ]
        if !shown.repository.isEmpty { lines.append("repository \(shown.repository)") }
        if !shown.commit.isEmpty { lines.append("commit     \(shown.commit)") }
        if !shown.branch.isEmpty { lines.append("branch     \(shown.branch)") }
        if let tag = shown.tag { lines.append("tag        \(tag)") }
        if let rebuildOf = shown.rebuildOf { lines.append("rebuilds   \(rebuildOf)") }
        for line in lines { print(TerminalText.printable(line, limit: 400)) }
        print("")
        var table = Table(header: ["JOB", "NAME", "STATE", "ATTEMPT", "EXIT", "DURATION", "AGENT"])
        for job in shown.jobs {
            let state = job.failure.map { "\(job.state)(\($0))" } ?? (job.softFailed == true ? "\(job.state)(soft)" : job.state)
            let duration = job.startedAt.map { RelativeTime.duration(Int((job.finishedAt ?? now).timeIntervalSince($0))) } ?? "-"
            table.rows.append([job.id, job.name, state, String(job.attempt), job.exitStatus.map(String.init) ?? "-", duration, job.agentId ?? "-"])
        }
        for line in table.lines() { print(line) }
    }
}
