import BenchKit
import Benchmark
import Foundation
import GantryCoordinator
import GantryProtocol
import NIOCore
import NIOEmbedded

// Micro benchmarks of the per-message and per-job costs that bound the scenarios in
// docs/benchmarks.md: framing and protobuf coding of the two hot messages (a `Lease` and a
// full `LogChunk`), deflate/inflate of one 256 KiB log chunk as agents cut them, and the
// coordinator store's commits for one job's lifecycle. Run by ordo-one's plugin:
// `swift package --package-path Benchmarks benchmark --target GantryMicro`.

/// One realistic lease: what the coordinator sends for every job.
let lease = Gantry_V1_Envelope.with {
    $0.lease = .with {
        $0.jobID = "3f1c2a9e-6d1b-4c55-9a7e-0d2b8f6a4c11"
        $0.attempt = 1
        $0.pipelineID = "b7e4d0c2-1a3f-4e8b-9c6d-5f2a7b8e9d01"
        $0.stepKey = "unit"
        $0.commands = ["git clone --quiet \"$GANTRY_REPOSITORY\" src && git -C src checkout --quiet \"$GANTRY_COMMIT\"", "make -C src test"]
        $0.env = ["GOFLAGS": "-mod=readonly", "TARGET": "staging", "CI": "true"]
        $0.timeoutSeconds = 1200
        $0.cancelGraceSeconds = 10
        $0.repository = "https://git.example.com/app.git"
        $0.commit = "9fceb02d0ae598e95dc970b74767f19372d61af8"
        $0.branch = "main"
    }
}

/// 256 KiB of build-log-like text: one full chunk as the agent cuts it.
let rawChunk: ByteBuffer = {
    var generator = BuildLogGenerator()
    return ByteBuffer(bytes: generator.bytes(256 * 1024))
}()

// Built once at start-up from the constants above: a failure here is a bug in this file.
let deflatedChunk: ByteBuffer = try! LogCompression.compress(rawChunk)
let logChunk = Gantry_V1_Envelope.with {
    $0.logChunk = .with {
        $0.jobID = "3f1c2a9e-6d1b-4c55-9a7e-0d2b8f6a4c11"
        $0.attempt = 1
        $0.seq = 42
        $0.offset = 42 * 262_144
        $0.rawLength = UInt32(rawChunk.readableBytes)
        $0.data = Data(deflatedChunk.readableBytesView)
    }
}
let leaseFrame: ByteBuffer = try! EnvelopeEncoder.frame(lease)
let logChunkFrame: ByteBuffer = try! EnvelopeEncoder.frame(logChunk)

/// Protobuf encode (with the length prefix) and decode of one message kind.
func codecBenchmarks(_ name: String, _ envelope: Gantry_V1_Envelope, frame: ByteBuffer) {
    Benchmark("Frame encode: \(name)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try EnvelopeEncoder.frame(envelope)) }
    }
    Benchmark("Frame decode: \(name)") { benchmark in
        let bytes = payload(frame)
        for _ in benchmark.scaledIterations { blackHole(try EnvelopeDecoder.decode(bytes)) }
    }
}

/// A frame's payload (the length prefix skipped), as `EnvelopeDecoder` receives it.
func payload(_ frame: ByteBuffer) -> ByteBuffer {
    frame.getSlice(at: frame.readerIndex + 4, length: frame.readableBytes - 4) ?? ByteBuffer()
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        timeUnits: .microseconds,
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    codecBenchmarks("Lease", lease, frame: leaseFrame)
    codecBenchmarks("LogChunk (256 KiB raw, deflated)", logChunk, frame: logChunkFrame)
    Benchmark("Framing pipeline: Lease frame in, envelope out (EmbeddedChannel)") { benchmark in
        let channel = EmbeddedChannel()
        try GantryFraming.addHandlers(to: channel.pipeline.syncOperations)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try channel.writeInbound(leaseFrame)
            blackHole(try channel.readInbound(as: Gantry_V1_Envelope.self))
        }
        benchmark.stopMeasurement()
        _ = try channel.finish()
    }
    Benchmark("Deflate 256 KiB log chunk (level 1)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try LogCompression.compress(rawChunk)) }
    }
    Benchmark("Inflate 256 KiB log chunk (coordinator's check)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try LogCompression.decompress(deflatedChunk, expectedLength: rawChunk.readableBytes))
        }
    }

    Benchmark(
        "Store: insert a 1-job pipeline (1 commit)", configuration: .init(setup: StoreFixture.open, teardown: StoreFixture.close)
    ) { benchmark in
        let store = try StoreFixture.current()
        for _ in benchmark.scaledIterations {
            let (pipeline, job) = try StoreFixture.newPipeline()
            try store.insert(pipeline: pipeline, jobs: [job])
        }
    }
    Benchmark(
        "Store: job lifecycle (insert + leased + running + succeeded = 4 commits)",
        configuration: .init(setup: StoreFixture.open, teardown: StoreFixture.close)
    ) { benchmark in
        let store = try StoreFixture.current()
        for _ in benchmark.scaledIterations {
            let (pipeline, created) = try StoreFixture.newPipeline()
            try store.insert(pipeline: pipeline, jobs: [created])
            var job = created
            job.attempt = 1
            job.agentId = "bench/1"
            var attempt = try StoreFixture.attempt(job)
            for state in [JobState.leased, .running, .succeeded] {
                job.state = state
                attempt.state = AttemptState(ending: state)
                if state == .running { job.startedAt = Date() }
                if state == .succeeded {
                    job.finishedAt = Date()
                    job.exitStatus = 0
                    attempt.finishedAt = job.finishedAt
                }
                try store.update([job], attempt: attempt)
            }
        }
    }
}
