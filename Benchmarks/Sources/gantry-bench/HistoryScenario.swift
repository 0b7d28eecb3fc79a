import BenchKit
import Foundation
import GantryProtocol
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// Scenario 6: a long history. The coordinator keeps every finished job; what it serves
/// must not slow down as they pile up. For each size (10^3, 10^5 and 10^6 finished jobs)
/// the state directory's database is filled directly (`HistorySeeder`), then:
///
/// - restart: from just before `posix_spawn` of `gantry-coordinator serve` on that state
///   directory to the first answer of its API (`GET /v1/jobs?limit=1`), as many times;
/// - `GET /v1/jobs?limit=50` (the newest jobs), `GET /v1/jobs?state=failed&limit=50`, and
///   `GET /v1/jobs/{id}` of random jobs of the whole history, each `requests` times in
///   sequence on a warm keep-alive connection, against the last coordinator started.
///
/// One cluster for all sizes: each size adds jobs to the previous one's database, newer
/// than all of it, with the coordinator stopped.
struct HistoryScenario {
    struct Size: Sendable {
        var jobs: Int
        var pipelines: Int
        var seedSeconds: Double
        var databaseBytes: Int
        /// Milliseconds, one per restart.
        var restarts: [Double]
        var list: Summary
        var listFailed: Summary
        var show: Summary
        var coordinatorRSS: Int
        var restart: Summary { Summary(restarts)! }
    }

    let context: BenchContext
    var sizes: [Int] { context.quick ? [1_000, 10_000] : [1_000, 100_000, 1_000_000] }
    var requests: Int { context.quick ? 50 : 200 }
    var restarts: Int { context.quick ? 3 : 5 }

    func run() async throws -> [Size] {
        let cluster = try Cluster(name: "history", binaries: context.binaries, workDir: context.workDir)
        defer { cluster.tearDown() }
        try cluster.initializeCoordinator()
        let token = try String(contentsOfFile: cluster.coordinatorState + "/admin.token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let seeder = try HistorySeeder(path: cluster.database)
        var results: [Size] = []
        for size in sizes {
            do {
                let started = ContinuousClock.now
                try seeder.seed(upTo: size)
                let seedSeconds = (ContinuousClock.now - started).seconds
                let bytes = Self.fileSize(cluster.database) + Self.fileSize(cluster.database + "-wal")
                context.log(
                    "  \(size.formatted()) jobs (\(seeder.pipelines.formatted()) pipelines): seeded in "
                        + "\(f(seedSeconds, 1)) s, database \(mib(Double(bytes)))")

                var restartTimes: [Double] = []
                for _ in 1...restarts { restartTimes.append(try await restart(cluster, token: token)) }
                context.log("    restart to first API answer: \(restartTimes.map { f($0, 1) }.joined(separator: ", ")) ms")

                let coordinator = try cluster.spawnCoordinator()
                defer { coordinator.stop(grace: .seconds(15)) }
                try cluster.coordinatorListening(
                    try coordinator.waitForLine(containing: Cluster.listeningLine, in: coordinator.stdoutPath, timeout: .seconds(60)))
                let api = try cluster.client
                var random = SplitMix(seed: UInt64(size))
                let newest = try await api.request(.GET, "/v1/jobs?limit=50")
                let listed = try API.decoder.decode([API.Job].self, from: Data(buffer: newest.body))
                guard newest.status == 200, listed.count == min(50, size), listed.first?.id == HistorySeeder.jobID(size - 1)
                else { throw HarnessError("GET /v1/jobs?limit=50 answered \(newest.status) with \(listed.count) jobs, not the newest") }
                for _ in 0..<20 {  // warm-up: connection, caches
                    _ = try await api.request(.GET, "/v1/jobs?limit=50")
                    _ = try await api.request(.GET, "/v1/jobs/\(HistorySeeder.jobID(Int(random.next() % UInt64(size))))")
                }
                let list = try await measure(api, count: requests) { _ in "/v1/jobs?limit=50" }
                let listFailed = try await measure(api, count: requests) { _ in "/v1/jobs?state=failed&limit=50" }
                let show = try await measure(api, count: requests) { _ in
                    "/v1/jobs/\(HistorySeeder.jobID(Int(random.next() % UInt64(size))))"
                }
                let rss = ProcessStats.residentBytes(pid: coordinator.pid) ?? 0
                context.log(
                    "    GET /v1/jobs?limit=50 median \(ms(list.median)), p95 \(ms(list.p95)); ?state=failed "
                        + "median \(ms(listFailed.median)), p95 \(ms(listFailed.p95)); GET /v1/jobs/{id} median "
                        + "\(ms(show.median)), p95 \(ms(show.p95)); coordinator RSS \(mib(Double(rss)))")
                results.append(
                    Size(
                        jobs: size, pipelines: seeder.pipelines, seedSeconds: seedSeconds, databaseBytes: bytes,
                        restarts: restartTimes, list: list, listFailed: listFailed, show: show, coordinatorRSS: rss))
            } catch {
                throw HarnessError("history at \(size) jobs failed: \(error)\n\(cluster.diagnostics())")
            }
        }
        return results
    }

    /// One start of `serve` on the filled state directory, in milliseconds from just before
    /// `posix_spawn` until its API answered; the process is stopped (SIGTERM) after.
    ///
    /// Its stdout is polled every millisecond for the listening line (it names the port,
    /// 0 was asked for), then one request is made on a new connection.
    private func restart(_ cluster: Cluster, token: String) async throws -> Double {
        let started = ContinuousClock.now
        let coordinator = try cluster.spawnCoordinator()
        defer { coordinator.stop(grace: .seconds(15)) }
        let deadline = started + .seconds(60)
        var http: String?
        while http == nil {
            if let text = try? String(contentsOfFile: coordinator.stdoutPath, encoding: .utf8),
                let line = text.split(separator: "\n").first(where: { $0.contains(Cluster.listeningLine) })
            {
                http = line.split(separator: " ").first { $0.hasPrefix("http=") }.map { String($0.dropFirst(5)) }
                if http == nil { throw HarnessError("unexpected listening line: \(line)") }
                break
            }
            guard coordinator.isRunning else {
                throw HarnessError("the coordinator exited at start:\n\(ChildProcess.tail(of: cluster.root + "/coordinator.log"))")
            }
            guard ContinuousClock.now < deadline else { throw HarnessError("the coordinator did not listen within 60 s") }
            usleep(1_000)
        }
        let api = APIClient(base: "http://\(http!)", token: token)
        let (status, _) = try await api.request(.GET, "/v1/jobs?limit=1")
        let elapsed = (ContinuousClock.now - started).milliseconds
        guard status == 200 else { throw HarnessError("GET /v1/jobs?limit=1 after a restart answered \(status)") }
        return elapsed
    }

    /// `count` sequential GETs, each timed from sending to the whole body received.
    private func measure(_ api: APIClient, count: Int, path: (Int) -> String) async throws -> Summary {
        var samples: [Double] = []
        samples.reserveCapacity(count)
        for n in 0..<count {
            let target = path(n)
            let started = ContinuousClock.now
            let (status, body) = try await api.request(.GET, target)
            samples.append((ContinuousClock.now - started).milliseconds)
            guard status == 200, body.readableBytes > 2 else { throw HarnessError("GET \(target) answered \(status)") }
        }
        return Summary(samples)!
    }

    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }
}

/// A small, fast, seedable generator (SplitMix64): the seeded ids and the random picks
/// are the same on every run.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
