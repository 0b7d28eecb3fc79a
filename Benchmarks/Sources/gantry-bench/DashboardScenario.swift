import AsyncHTTPClient
import BenchKit
import Foundation
import GantryProtocol
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// Scenario 9: the web dashboard (issue 16).
///
/// A coordinator with one agent; the browser's requests are made by this harness, signed
/// in as a browser is (`/ui/login` with the login cookie and form value, then the session
/// cookie). Two pages are measured:
///
/// - a pipeline of 1,000 jobs (`build`, then four `parallelism: 250`-ish steps that
///   depend on it: 999 drawn edges), whose jobs never run (they ask for an agent label
///   nobody offers), so the page is measured as it is while a big pipeline waits;
/// - the log page and the log's live tail of a job that wrote 100 MB (`yes` of a
///   100-byte build-log line), whose tail starts after counting the lines before it.
///
/// Each page is fetched `samples` times on one keep-alive connection. Two figures per
/// page: the server's own time (its `Server-Timing: render;dur=` header: reads and
/// rendering) and the whole request as the client sees it over loopback. The tail is
/// timed to its first `log` event and to its `end` event (every byte of the last 256 KiB
/// received); the raw download of the whole 100 MB log is timed for comparison.
struct DashboardScenario {
    struct Sample: Sendable {
        var serverMilliseconds: [Double] = []
        var clientMilliseconds: [Double] = []
        var bytes = 0
    }

    struct Run: Sendable {
        var pipelinePage = Sample()
        var pipelinesPage = Sample()
        var logPage = Sample()
        var tailFirstEventMilliseconds: [Double] = []
        var tailEndMilliseconds: [Double] = []
        var rawLogSeconds: Double = 0
        var logBytes = 0
        var jobs = 0
    }

    let context: BenchContext
    var samples: Int { context.quick ? 5 : 30 }
    var logBytes: Int { context.quick ? 10_000_000 : 100_000_000 }

    func run() async throws -> [Run] {
        var runs: [Run] = []
        for index in 1...context.runs {
            let cluster = try Cluster(name: "dashboard-\(index)", binaries: context.binaries, workDir: context.workDir)
            defer { cluster.tearDown() }
            try cluster.startCoordinator()
            _ = try cluster.startAgents(count: 1, labels: "pool=dash", cgroups: false)
            let api = try cluster.client
            let base = cluster.serverURL
            let cookie = try await signIn(base: base, token: api.token)
            var run = Run()

            var yaml = "steps:\n  - key: build\n    agents: {pool: nobody}\n    command: make\n"
            for (n, copies) in [250, 250, 250, 249].enumerated() {
                yaml += "  - key: test\(n)\n    depends_on: build\n    parallelism: \(copies)\n    agents: {pool: nobody}\n"
                yaml += "    command: make test\n"
            }
            let big = try await api.submit(yaml: yaml, file: "thousand.yml")
            run.jobs = big.jobs.count
            guard run.jobs == 1000 else { throw HarnessError("the big pipeline has \(run.jobs) jobs, not 1,000") }
            // Fifty more pipelines, so the list's first page is a full one.
            for n in 0..<50 {
                _ = try await api.submit(
                    yaml: "steps:\n  - key: s\(n)\n    agents: {pool: nobody}\n    parallelism: 5\n    command: make\n",
                    file: "small.yml", repository: "https://git.example.com/team/app\(n % 5).git", branch: "feature/\(n)")
            }
            for _ in 0..<samples {
                try await fetch(base + "/ui/pipelines/\(big.id)", cookie: cookie, into: &run.pipelinePage)
                try await fetch(base + "/ui/pipelines", cookie: cookie, into: &run.pipelinesPage)
            }

            // A build-log-like file (`BuildLogGenerator`, as the logs scenario uses), which
            // compresses as real logs do, not a repeated line that would inflate for free.
            let file = try writeLog()
            let logYAML = """
                steps:
                  - key: big-log
                    agents: {pool: dash}
                    checkout: false
                    command: cat \(file)
                """
            let logged = try await api.submit(yaml: logYAML, file: "big-log.yml")
            let jobID = logged.jobs[0].id
            let deadline = ContinuousClock.now + .seconds(600)
            while true {
                let job = try await api.job(jobID)
                if job.isTerminal {
                    guard job.state == "succeeded" else { throw HarnessError("the 100 MB log job ended \(job.state)") }
                    run.logBytes = job.logBytes
                    break
                }
                guard ContinuousClock.now < deadline else { throw HarnessError("the 100 MB log job did not finish") }
                try await Task.sleep(for: .milliseconds(200))
            }
            for _ in 0..<samples {
                try await fetch(base + "/ui/jobs/\(jobID)", cookie: cookie, into: &run.logPage)
                let (first, end) = try await tail(base + "/ui/jobs/\(jobID)/events?from=tail", cookie: cookie)
                run.tailFirstEventMilliseconds.append(first)
                run.tailEndMilliseconds.append(end)
            }
            let started = ContinuousClock.now
            let (status, body) = try await api.request(.GET, "/v1/jobs/\(jobID)/log", limit: 256 << 20)
            guard status == 200, body.readableBytes == run.logBytes else { throw HarnessError("raw log: \(status), \(body.readableBytes) bytes") }
            run.rawLogSeconds = (ContinuousClock.now - started).seconds
            cluster.stop()
            runs.append(run)
            context.log(
                "dashboard run \(index): 1,000-job page median \(f(Summary(run.pipelinePage.serverMilliseconds)?.median)) ms server, "
                    + "100 MB log tail \(f(Summary(run.tailEndMilliseconds)?.median)) ms to its end")
        }
        return runs
    }

    /// The log file the big-log step prints, written once per work dir.
    private func writeLog() throws -> String {
        let path = context.workDir + "/dashboard-log-\(logBytes).txt"
        if let attributes = try? FileManager.default.attributesOfItem(atPath: path), (attributes[.size] as? Int) == logBytes {
            return path
        }
        guard let file = fopen(path, "w") else { throw HarnessError("cannot write \(path)") }
        defer { fclose(file) }
        var generator = BuildLogGenerator()
        var written = 0
        var buffer: [UInt8] = []
        while written < logBytes {
            buffer.removeAll(keepingCapacity: true)
            generator.append(bytes: min(1 << 20, logBytes - written), to: &buffer)
            let slice = buffer.prefix(logBytes - written)
            guard slice.withUnsafeBytes({ fwrite($0.baseAddress, 1, $0.count, file) }) == slice.count else {
                throw HarnessError("short write to \(path)")
            }
            written += slice.count
        }
        return path
    }

    private func f(_ value: Double?) -> String { value.map { String(format: "%.1f", $0) } ?? "?" }

    /// The session cookie, got as a browser gets it.
    private func signIn(base: String, token: String) async throws -> String {
        let form = try await HTTPClient.shared.execute(HTTPClientRequest(url: base + "/ui/login"), timeout: .seconds(30))
        let page = String(buffer: try await form.body.collect(upTo: 1 << 20))
        guard let login = form.headers["set-cookie"].first.flatMap({ $0.split(separator: ";").first }).map(String.init),
            let range = page.range(of: #"name="csrf" value="([^"]+)""#, options: .regularExpression)
        else { throw HarnessError("the sign-in page has no form") }
        let csrf = page[range].split(separator: "\"")[3]
        var request = HTTPClientRequest(url: base + "/ui/login")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Cookie", value: login)
        let encode = { (text: String) in text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "" }
        request.body = .bytes(ByteBuffer(string: "token=\(encode(token))&csrf=\(encode(String(csrf)))&next=%2Fui%2Fpipelines"))
        // The answer is a redirect whose Set-Cookie is the point: not followed.
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(30))
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
        guard response.status == .seeOther,
            let session = response.headers["set-cookie"].first(where: { $0.hasPrefix("gantry_session=") })?
                .split(separator: ";").first
        else {
            let page = String(buffer: try await response.body.collect(upTo: 1 << 20))
            let error = page.range(of: #"<p class="error"[^>]*>[^<]*"#, options: .regularExpression).map { String(page[$0]) } ?? ""
            throw HarnessError("sign-in answered \(response.status) \(error)")
        }
        return String(session)
    }

    private func fetch(_ url: String, cookie: String, into sample: inout Sample) async throws {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Cookie", value: cookie)
        let started = ContinuousClock.now
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 64 << 20)
        let client = (ContinuousClock.now - started).seconds * 1000
        guard response.status == .ok else { throw HarnessError("\(url) answered \(response.status)") }
        guard let timing = response.headers["server-timing"].first,
            let value = timing.split(separator: "=").last.flatMap({ Double($0) })
        else { throw HarnessError("\(url) has no Server-Timing") }
        sample.serverMilliseconds.append(value)
        sample.clientMilliseconds.append(client)
        sample.bytes = body.readableBytes
    }

    /// Milliseconds to the first `log` event and to the `end` event of a finished job's tail.
    private func tail(_ url: String, cookie: String) async throws -> (Double, Double) {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Cookie", value: cookie)
        let started = ContinuousClock.now
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        var first: Double?
        var text = ""
        for try await var buffer in response.body {
            text += buffer.readString(length: buffer.readableBytes) ?? ""
            if first == nil, text.contains("event: log") { first = (ContinuousClock.now - started).seconds * 1000 }
            if text.contains("event: end") { break }
        }
        let end = (ContinuousClock.now - started).seconds * 1000
        guard let first, text.contains("event: end") else { throw HarnessError("the tail did not end") }
        return (first, end)
    }
}
