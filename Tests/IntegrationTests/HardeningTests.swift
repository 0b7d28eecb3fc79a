import Foundation
import GantryProtocol
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// The hardening review's attacks, replayed against the real coordinator binary over real
/// TLS on 127.0.0.1. After each: the coordinator is still up, still answers the API, still
/// completes a real job on a real agent, and its memory stayed bounded.
@Suite("Hardening: hostile agents, connections and pipelines", .serialized, .timeLimit(.minutes(5)))
struct HardeningTests {
    typealias Raw = ConnectionSecurityTests

    /// The coordinator's resident memory, from /proc.
    static func residentMiB(_ process: ChildProcess) -> Double {
        guard let pid = process.pid, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kib / 1024
    }

    static func hello(_ id: String, labels: [String: String] = [:]) -> Gantry_V1_Envelope {
        .with {
            $0.hello = .with {
                $0.minVersion = ProtocolVersion.minimum
                $0.maxVersion = ProtocolVersion.current
                $0.agentID = id
                $0.capacity = 1
                $0.labels = labels
            }
        }
    }

    /// Connects as `id` (under the test host's real certificate), takes the lease of the
    /// job only it matches, sends `attack`, and returns every frame the coordinator sent
    /// until it closed the connection.
    static func leaseThenSend(_ cluster: TestCluster, id: String, queue: String, _ attack: (Gantry_V1_Lease) -> Gantry_V1_Envelope)
        async throws -> [Gantry_V1_Envelope]
    {
        let connection = try await Raw.connect(cluster.agentAddress, tls: try Raw.agentTLS(cluster))
        return try await connection.executeThenClose { inbound, outbound in
            try await outbound.write(Self.hello(id, labels: ["lane": queue]))
            var iterator = inbound.makeAsyncIterator()
            #expect(try await iterator.next()?.welcome.version == ProtocolVersion.current)
            try await outbound.write(.with { $0.ready = .with { $0.slots = 1 } })
            var lease: Gantry_V1_Lease?
            while lease == nil, let frame = try await iterator.next() {
                if case .lease(let leased) = frame.body { lease = leased }
            }
            try await outbound.write(attack(try #require(lease)))
            var replies: [Gantry_V1_Envelope] = []
            while let frame = try await iterator.next(), replies.count < 100 { replies.append(frame) }
            return replies
        }
    }

    /// Finding 1: a log offset of 2^63, an offset near Int.max, and a finish whose
    /// log_length is 2^63 each trapped the coordinator. Now each closes that connection
    /// with a clear error.
    @Test func outOfRangeNumbersFromAnAgentFailOnlyItsConnection() async throws {
        try await TestCluster.with("hostile-numbers") { cluster in
            try await cluster.startAgent(slot: "1")
            let before = Self.residentMiB(cluster.coordinator)
            let pipeline = try await cluster.submit(
                """
                steps:
                  - {key: a, command: "true", agents: {lane: raw}, retry: {automatic: false}}
                  - {key: b, command: "true", agents: {lane: raw}, retry: {automatic: false}}
                  - {key: c, command: "true", agents: {lane: raw}, retry: {automatic: false}}
                """)
            let attacks: [(String, (Gantry_V1_Lease) -> Gantry_V1_Envelope, String)] = [
                ("testhost/raw-a", { lease in .with { $0.logChunk = .with { $0.jobID = lease.jobID; $0.attempt = lease.attempt; $0.offset = 1 << 63; $0.rawLength = 1; $0.data = Data([1]) } } }, "log_chunk.offset"),
                ("testhost/raw-b", { lease in .with { $0.logChunk = .with { $0.jobID = lease.jobID; $0.attempt = lease.attempt; $0.offset = UInt64(Int.max) - 2; $0.rawLength = 100; $0.data = Data([1]) } } }, "log_chunk.offset"),
                ("testhost/raw-c", { lease in .with { $0.jobFinished = .with { $0.jobID = lease.jobID; $0.attempt = lease.attempt; $0.outcome = .succeeded; $0.logLength = 1 << 63 } } }, "job_finished.log_length"),
            ]
            for (id, attack, field) in attacks {
                let replies = try await Self.leaseThenSend(cluster, id: id, queue: "raw", attack)
                let error = try #require(replies.last?.error, "\(id): \(replies)")
                #expect(error.code == .malformed && error.fatal && error.message.contains(field), "\(error.message)")
            }
            try await Raw.expectStillServing(cluster)
            // The attacked jobs are not finished by the forged frames.
            let jobs = try await cluster.pipeline(pipeline.id).jobs
            #expect(jobs.allSatisfy { $0.state != "succeeded" }, "\(jobs.map(\.state))")
            _ = try await cluster.request(.POST, "/v1/pipelines/\(pipeline.id)/cancel")
            #expect(Self.residentMiB(cluster.coordinator) - before < 64)
        }
    }

    /// Finding 2 and 6: durations that overflowed the wire or the parser, YAML alias bombs
    /// (one in a mapping key froze the coordinator for 109 s), and `.`/`..` names are
    /// refused at submission with 422; nothing is stored, and the coordinator keeps
    /// serving.
    @Test func hostilePipelinesAreRefusedAtSubmission() async throws {
        try await TestCluster.with("hostile-pipelines") { cluster in
            try await cluster.startAgent(slot: "1")
            var bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
            var previous = "a"
            for level in "bcdefghij" {
                bomb += "\(level): &\(level) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ", ") + "]\n"
                previous = String(level)
            }
            let keyBomb = bomb + "steps:\n  - command: \"true\"\n    env:\n      ? *j\n      : v\n"
            let valueBomb = bomb + "steps:\n  - command: \"true\"\n    env: {X: *j}\n"
            let cases = [
                "steps:\n  - command: \"true\"\n    timeout: 5000000000\n",
                "steps:\n  - command: \"true\"\n    cancel_grace: 5000000000\n",
                "steps:\n  - command: \"true\"\n    timeout: 9999999999999999h\n",
                "steps:\n  - key: ..\n    command: \"true\"\n",
                keyBomb, valueBomb,
            ]
            for yaml in cases {
                let started = ContinuousClock.now
                let (status, body) = try await cluster.request(
                    .POST, "/v1/pipelines", body: try API.encoder.encode(API.SubmitPipeline(yaml: yaml, file: "hostile.yml")))
                #expect(status == 422, "\(yaml.prefix(80)): \(status) \(String(decoding: body, as: UTF8.self))")
                #expect(ContinuousClock.now - started < .seconds(10), "refused quickly, not after composing the bomb")
            }
            // A body past the 1 MiB bound is refused with 413, without being read whole.
            let huge = try API.encoder.encode(
                API.SubmitPipeline(yaml: "steps:\n  - command: \"true\"\n# " + String(repeating: "x", count: 1 << 20), file: "big.yml"))
            let (tooLarge, tooLargeBody) = try await cluster.request(.POST, "/v1/pipelines", body: huge)
            #expect(tooLarge == 413 && String(decoding: tooLargeBody, as: UTF8.self).contains("too_large"), "\(tooLarge)")
            let (_, listed) = try await cluster.request(.GET, "/v1/jobs")
            #expect(try API.decoder.decode([API.Job].self, from: listed).isEmpty, "nothing was stored")
            try await Raw.expectStillServing(cluster)
        }
    }

    /// Finding 4: idle TCP connections, TLS peers that never send a frame, and an
    /// anonymous 8 MiB frame prefix. Anonymous connections are capped per address and cut
    /// at the handshake deadline; the API and real agents keep working throughout.
    @Test func anonymousConnectionsAreBoundedInNumberTimeAndSize() async throws {
        try await TestCluster.with(
            "anonymous", coordinatorArguments: ["--max-handshakes-per-address", "8", "--handshake-timeout", "1"]
        ) { cluster in
            try await cluster.startAgent(slot: "1")
            let parts = cluster.agentAddress.split(separator: ":")
            var idle: [any Channel] = []
            for _ in 0..<20 {
                idle.append(
                    try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                        .connect(host: String(parts[0]), port: Int(parts[1])!).get())
            }
            // Past the cap of 8 the coordinator closes at once; the 8 it admitted are cut at
            // the 1 s handshake deadline.
            defer { for channel in idle { channel.close(promise: nil) } }
            try await waitUntil("every idle connection to be closed", timeout: .seconds(30)) {
                idle.allSatisfy { !$0.isActive }
            }
            // A TLS peer without a certificate that completes the handshake and sends nothing.
            let silent = try await Raw.connect(cluster.agentAddress, tls: try Raw.caTLS(cluster))
            let silentReply: Gantry_V1_Envelope? = try await silent.executeThenClose { inbound, _ in
                var iterator = inbound.makeAsyncIterator()
                return try await iterator.next()
            }
            #expect(silentReply == nil, "closed by the first-frame deadline")
            // An anonymous frame announcing 8 MiB is refused from its prefix (the limit before
            // the handshake is 64 KiB).
            let big = Gantry_V1_Envelope.with {
                $0.enrollRequest = .with { $0.agentID = "x"; $0.token = "t"; $0.csrDer = Data(count: 200 * 1024) }
            }
            let refused = try await Raw.exchange(
                try await Raw.connect(cluster.agentAddress, tls: try Raw.caTLS(cluster), maximumFrameSize: 64 * 1024 * 1024), [big])
            #expect(refused?.error.code == .frameTooLarge)
            let (status, _) = try await cluster.request(.GET, "/v1/agents")
            #expect(status == 200)
            try await Raw.expectStillServing(cluster)
        }
    }

    /// Finding 7: an enrolled agent that floods heartbeats naming stale attempts and never
    /// reads is disconnected, not buffered (it grew the coordinator by 930 MiB); huge
    /// hellos and chunks declaring 16 MiB are refused; a newline in its error message
    /// cannot forge a line in the coordinator's log.
    @Test func aHostileEnrolledAgentIsBounded() async throws {
        try await TestCluster.with("hostile-agent") { cluster in
            try await cluster.startAgent(slot: "1")
            let before = Self.residentMiB(cluster.coordinator)

            // Heartbeats naming 256 stale attempts each, from a peer that never reads.
            let flood = try await Raw.connect(cluster.agentAddress, tls: try Raw.agentTLS(cluster))
            let stale = Gantry_V1_Envelope.with {
                $0.heartbeat = .with {
                    $0.running = (0..<256).map { index in .with { $0.jobID = "stale-\(index)"; $0.attempt = 1 } }
                }
            }
            try await flood.executeThenClose { _, outbound in
                try await outbound.write(Self.hello("testhost/flood"))
                for _ in 0..<400 {
                    do { try await outbound.write(stale) } catch { break }
                }
                // Hold the connection open, reading nothing, until the coordinator gives up on it.
                _ = try await cluster.coordinator.waitForLine(containing: "does not read what it is sent", timeout: .seconds(30))
            }
            #expect(Self.residentMiB(cluster.coordinator) - before < 100, "queued frames stay bounded")

            // 300,000 labels: refused from the frame's size before it is decoded.
            let labels = Dictionary(uniqueKeysWithValues: (0..<300_000).map { ("k\($0)", "v") })
            let hugeHello = try await Raw.exchange(
                try await Raw.connect(cluster.agentAddress, tls: try Raw.agentTLS(cluster), maximumFrameSize: 64 * 1024 * 1024),
                [Self.hello("testhost/labels", labels: labels)])
            #expect(hugeHello?.error.code == .frameTooLarge)
            // 65 labels fit the frame but not the label limit.
            let manyLabels = Dictionary(uniqueKeysWithValues: (0..<65).map { ("k\($0)", "v") })
            let refusedLabels = try await Raw.exchange(
                try await Raw.connect(cluster.agentAddress, tls: try Raw.agentTLS(cluster)),
                [Self.hello("testhost/labels", labels: manyLabels)])
            #expect(refusedLabels?.error.code == .malformed && refusedLabels?.error.message.contains("labels") == true)

            // A chunk declaring 16 MiB of raw output.
            _ = try await cluster.submit("steps:\n  - {command: \"true\", agents: {lane: raw}, retry: {automatic: false}}\n")
            let replies = try await Self.leaseThenSend(cluster, id: "testhost/inflate", queue: "raw") { lease in
                .with {
                    $0.logChunk = .with {
                        $0.jobID = lease.jobID
                        $0.attempt = lease.attempt
                        $0.rawLength = 16 * 1024 * 1024
                        $0.data = Data([0x03, 0x00])
                    }
                }
            }
            #expect(replies.last?.error.message.contains("raw_length") == true, "\(replies)")

            // A forged log line.
            let forger = try await Raw.connect(cluster.agentAddress, tls: try Raw.agentTLS(cluster))
            try await forger.executeThenClose { inbound, outbound in
                try await outbound.write(Self.hello("testhost/forger"))
                var iterator = inbound.makeAsyncIterator()
                _ = try await iterator.next()
                try await outbound.write(
                    .error(.internal, "boom\n2026-01-01T00:00:00+0000 critical gantry-coordinator: FORGED", fatal: false))
            }
            _ = try await cluster.coordinator.waitForLine(containing: "boom\\n", timeout: .seconds(30))
            #expect(!cluster.coordinator.lines.contains { $0.contains("FORGED") && !$0.contains("boom") })
            try await Raw.expectStillServing(cluster)
        }
    }

    /// Finding 8: the HTTP API had no header or idle timeout. A client that sends half a
    /// request head, or nothing, is closed after the idle timeout; a streaming log follow
    /// is not cut by it.
    @Test func httpClientsThatStallAreClosed() async throws {
        try await TestCluster.with("http-idle", coordinatorArguments: ["--http-idle-timeout", "1"]) { cluster in
            try await cluster.startAgent(slot: "1")
            let parts = cluster.httpAddress.split(separator: ":")
            var stalled: [any Channel] = []
            for index in 0..<2 {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connect(host: String(parts[0]), port: Int(parts[1])!).get()
                if index == 0 { try await channel.writeAndFlush(ByteBuffer(string: "GET /v1/agents HTTP/1.1\r\nHost: x\r\n")) }
                stalled.append(channel)
            }
            defer { for channel in stalled { channel.close(promise: nil) } }
            try await waitUntil("stalled HTTP connections to be closed", timeout: .seconds(30)) {
                stalled.allSatisfy { !$0.isActive }
            }
            // A job that logs for longer than the idle timeout is still followed to its end.
            let pipeline = try await cluster.submit("steps:\n  - key: slow\n    command: for i in 1 2 3; do echo $i; sleep 1; done\n")
            let (status, log) = try await cluster.request(.GET, "/v1/jobs/\(pipeline.jobs[0].id)/log?follow=true")
            #expect(status == 200)
            #expect(String(decoding: log, as: UTF8.self) == "1\n2\n3\n")
        }
    }

    /// One live connection per agent id: a second agent started with the same `--slot` is
    /// refused with an error naming the id and the flag, and the first keeps its session
    /// and runs jobs.
    @Test func aSecondAgentWithTheSameSlotIsRefused() async throws {
        try await TestCluster.with("same-slot") { cluster in
            try await cluster.startAgent(slot: "1")
            let twin = try await ChildProcess(
                name: "twin", executable: cluster.binaries + "/gantry-agent",
                arguments: [
                    "run", "--state", cluster.agentState, "--work-root", cluster.root + "/work-twin", "--slot", "1",
                    "--coordinator", cluster.agentAddress, "--heartbeat-interval", "0.5",
                ],
                logFile: cluster.root + "/twin.log")
            // Stopped by its pid whatever happens below: the cluster only stops its own agents.
            do {
                let line = try await twin.waitForLine(containing: "already connected", timeout: .seconds(20))
                #expect(line.contains("testhost/1") && line.contains("--slot"), "\(line)")
                try await Raw.expectStillServing(cluster)
            } catch {
                await twin.stop()
                throw error
            }
            await twin.stop()
            #expect(!cluster.agents[0].hasExited)
        }
    }
}
