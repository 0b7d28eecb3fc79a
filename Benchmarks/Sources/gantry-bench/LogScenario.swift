import BenchKit
import Foundation
import GantryCoordinator
import GantryProtocol
import NIOCore

/// Scenario 3: log streaming.
///
/// A build-log-like file (`BuildLogGenerator`, fixed seed) is written once; a step `cat`s
/// it. The rate is the file size over the time from the step's first byte (the step
/// records the wall clock just before `cat` starts, into a side file, not the log) to the
/// job seen terminal with its whole log stored and acknowledged (`JobFinished` is only
/// sent once every byte is acknowledged). The end is found by polling `GET /v1/jobs/{id}`
/// every 10 ms (an in-memory read while the job runs), or the pipeline every 25 ms when N
/// steps run at once on N agents.
///
/// The compression ratio is measured two ways: offline, deflating the file in 256 KiB
/// chunks with `LogCompression` exactly as the agent cuts full chunks; and from what the
/// coordinator stored (it stores chunks as they arrived on the wire), read from its
/// database once it has stopped.
struct LogScenario {
    struct Offline {
        var bytes: Int
        var compressed: Int
        var seconds: Double
        var ratio: Double { Double(bytes) / Double(compressed) }
        var megabytesPerSecond: Double { Double(bytes) / 1e6 / seconds }
    }

    struct Run {
        var index: Int
        var steps: Int
        var bytesPerStep: Int
        var seconds: Double
        /// Per step: first byte → terminal, seconds.
        var stepSeconds: [Double]
        var storedCompressed: Int
        var coordinatorCPU: Double
        var agentsCPU: Double
        var megabytesPerSecond: Double { Double(bytesPerStep * steps) / 1e6 / seconds }
        var storedRatio: Double { Double(bytesPerStep * steps) / Double(storedCompressed) }
    }

    let context: BenchContext
    var size: Int { context.quick ? 20_000_000 : 200_000_000 }
    var parallelSteps: Int { 8 }

    /// Writes the log file once per work dir (deterministic, so reuse is safe).
    func prepareFile() throws -> String {
        let path = context.workDir + "/buildlog-\(size).txt"
        if let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            (attributes[.size] as? Int) == size
        {
            return path
        }
        guard let file = fopen(path + ".tmp", "w") else { throw HarnessError("cannot write \(path)") }
        var generator = BuildLogGenerator()
        var written = 0
        var buffer: [UInt8] = []
        while written < size {
            buffer.removeAll(keepingCapacity: true)
            generator.append(bytes: min(1 << 20, size - written), to: &buffer)
            let slice = buffer.prefix(size - written)
            let count = slice.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            guard count == slice.count else { fclose(file); throw HarnessError("short write to \(path)") }
            written += count
        }
        fclose(file)
        guard rename(path + ".tmp", path) == 0 else { throw HarnessError("cannot rename to \(path)") }
        return path
    }

    /// Deflates the file in 256 KiB chunks, level 1, as the agent does.
    func offlineCompression(of path: String) throws -> Offline {
        guard let data = FileManager.default.contents(atPath: path) else { throw HarnessError("cannot read \(path)") }
        let chunk = 256 * 1024
        var compressed = 0
        let start = ContinuousClock.now
        var offset = 0
        while offset < data.count {
            let end = min(offset + chunk, data.count)
            let output = try LogCompression.compress(ByteBuffer(bytes: data[offset..<end]))
            compressed += output.readableBytes
            offset = end
        }
        return Offline(bytes: data.count, compressed: compressed, seconds: (ContinuousClock.now - start).seconds)
    }

    func run(steps: Int, file: String) async throws -> [Run] {
        var runs: [Run] = []
        for index in 1...context.runs {
            let cluster = try Cluster(name: "logs-\(steps)-\(index)", binaries: context.binaries, workDir: context.workDir)
            defer { cluster.tearDown() }
            do {
                try cluster.startCoordinator()
                let agents = try cluster.startAgents(count: steps, labels: "pool=logs", cgroups: true)
                let api = try cluster.client
                let coordinator = try cluster.coordinatorPID
                let marks = cluster.root + "/marks"
                try FileManager.default.createDirectory(atPath: marks, withIntermediateDirectories: true)
                var yaml = "steps:\n"
                for n in 1...steps {
                    yaml += "  - key: log\(n)\n    command: date +%s%N > \(marks)/start-\(n); exec cat \(file)\n"
                    yaml += "    agents:\n      pool: logs\n"
                }
                try await Task.sleep(for: .milliseconds(300))
                let coordinatorBefore = ProcessStats.cpuSeconds(pid: coordinator) ?? 0
                let agentsBefore = agents.map { ProcessStats.cpuSeconds(pid: $0.pid) ?? 0 }.reduce(0, +)
                let pipeline = try await api.submit(yaml: yaml, file: "logs.yml")
                var ends: [String: Int64] = [:]
                let deadline = ContinuousClock.now + .seconds(steps == 1 ? 300 : 900)
                // One request per poll whatever the number of steps, so polling stays a
                // small, constant load next to the streaming being measured.
                let interval: Duration = .milliseconds(steps == 1 ? 10 : 25)
                while ends.count < steps {
                    guard ContinuousClock.now < deadline else { throw HarnessError("log steps did not finish in time") }
                    let current = steps == 1 ? [try await api.job(pipeline.jobs[0].id)] : try await api.pipeline(pipeline.id).jobs
                    let now = realtimeNanoseconds()
                    for job in current where ends[job.id] == nil && job.isTerminal {
                        guard job.state == "succeeded", job.logBytes == size else {
                            throw HarnessError("job \(job.key) ended \(job.state) with \(job.logBytes) of \(size) log bytes")
                        }
                        ends[job.id] = now
                    }
                    if ends.count < steps { try await Task.sleep(for: interval) }
                }
                let coordinatorCPU = (ProcessStats.cpuSeconds(pid: coordinator) ?? 0) - coordinatorBefore
                let agentsCPU = agents.map { ProcessStats.cpuSeconds(pid: $0.pid) ?? 0 }.reduce(0, +) - agentsBefore
                var starts: [String: Int64] = [:]
                for (n, job) in pipeline.jobs.enumerated() {
                    let text = try String(contentsOfFile: "\(marks)/start-\(n + 1)", encoding: .utf8)
                    guard let value = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                        throw HarnessError("no start mark for step \(n + 1)")
                    }
                    starts[job.id] = value
                }
                let firstStart = starts.values.min() ?? 0
                let lastEnd = ends.values.max() ?? 0
                let stepSeconds = pipeline.jobs.map { Double(ends[$0.id]! - starts[$0.id]!) / 1e9 }
                cluster.stop()
                let stored = try storedCompressedBytes(database: cluster.database, jobs: pipeline.jobs.map(\.id))
                let run = Run(
                    index: index, steps: steps, bytesPerStep: size, seconds: Double(lastEnd - firstStart) / 1e9,
                    stepSeconds: stepSeconds, storedCompressed: stored, coordinatorCPU: coordinatorCPU,
                    agentsCPU: agentsCPU)
                context.log(
                    "  run \(index): \(steps) × \(size / 1_000_000) MB in \(String(format: "%.2f", run.seconds)) s = "
                        + "\(String(format: "%.1f", run.megabytesPerSecond)) MB/s; stored ratio "
                        + "\(String(format: "%.2f", run.storedRatio))×; CPU coordinator \(String(format: "%.2f", coordinatorCPU)) s, "
                        + "agents \(String(format: "%.2f", agentsCPU)) s")
                runs.append(run)
            } catch {
                throw HarnessError("log run \(index) (\(steps) steps) failed: \(error)\n\(cluster.diagnostics())")
            }
        }
        return runs
    }

    /// Compressed bytes the coordinator stored for the jobs' attempt 1, read from its
    /// database after it stopped (chunks are stored exactly as they came off the wire).
    private func storedCompressedBytes(database: String, jobs: [String]) throws -> Int {
        let store = try SQLiteStore(path: database)
        var total = 0
        for job in jobs {
            var offset = 0
            for _ in 0..<100_000 {
                let chunks = try store.logChunks(jobID: job, attempt: 1, from: offset, limit: 256)
                guard let last = chunks.last else { break }
                total += chunks.reduce(0) { $0 + $1.data.count }
                offset = last.offset + last.rawLength
            }
        }
        return total
    }
}
