import Foundation
@testable import GantryAgent
import GantryProtocol
import NIOCore
import Synchronization
import Testing

/// The streamer with its upload injected: no network, just the frames it would send.
@Suite("Log streamer", .timeLimit(.minutes(1)))
struct LogStreamerTests {
    final class Uploads: Sendable {
        let chunks = Mutex<[Gantry_V1_LogChunk]>([])
        let connected = Mutex(true)
        let completions = Mutex(0)
        /// Every upload the streamer tried, sent or not.
        let attempts = Mutex(0)
        let failures = Mutex<[String]>([])
        func upload(_ envelope: Gantry_V1_Envelope) -> Bool {
            attempts.withLock { $0 += 1 }
            guard connected.withLock({ $0 }) else { return false }
            chunks.withLock { $0.append(envelope.logChunk) }
            return true
        }
        func failed(_ why: String) {
            failures.withLock { $0.append(why) }
        }
        var all: [Gantry_V1_LogChunk] { chunks.withLock { $0 } }
        func text() throws -> String {
            try all.map { String(buffer: try LogCompression.decompress(ByteBuffer(bytes: $0.data), expectedLength: Int($0.rawLength))) }
                .joined()
        }
    }

    func makeSpool() throws -> LogSpool {
        try LogSpool(path: NSTemporaryDirectory() + "spool-\(UUID().uuidString).log")
    }

    @Test func cutsFullChunksBySizeAndTheTailByTime() async throws {
        let spool = try makeSpool()
        defer { spool.remove() }
        let uploads = Uploads()
        var configuration = LogStreamer.Configuration()
        configuration.maximumChunkSize = 1000
        configuration.maximumDelay = .milliseconds(50)
        let streamer = LogStreamer(jobID: "j", attempt: 1, spool: spool, configuration: configuration) { uploads.upload($0) }
        let task = Task { await streamer.run() }
        defer { task.cancel() }

        try spool.append(String(repeating: "a", count: 2500))
        streamer.outputAppended()
        try await waitFor { uploads.all.count == 3 }
        #expect(uploads.all.map(\.rawLength) == [1000, 1000, 500])
        #expect(uploads.all.map(\.offset) == [0, 1000, 2000])
        #expect(uploads.all.map(\.seq) == [1, 2, 3])
        #expect(try uploads.text() == String(repeating: "a", count: 2500))
    }

    @Test func stopsAtTheInFlightWindowUntilAcknowledged() async throws {
        let spool = try makeSpool()
        defer { spool.remove() }
        let uploads = Uploads()
        var configuration = LogStreamer.Configuration()
        configuration.maximumChunkSize = 100
        configuration.maximumInFlight = 300
        let streamer = LogStreamer(jobID: "j", attempt: 1, spool: spool, configuration: configuration) { uploads.upload($0) }
        let task = Task { await streamer.run() }
        defer { task.cancel() }
        try spool.append(String(repeating: "b", count: 1000))
        await streamer.finish { uploads.completions.withLock { $0 += 1 } }
        try await waitFor { uploads.all.count == 3 }
        // Nothing more goes out while the window is full, however often the streamer wakes:
        // wake it (wake-ups coalesce, so until it has run) three more times, then look.
        let passes = await streamer.passes
        try await waitFor {
            streamer.outputAppended()
            return await streamer.passes >= passes + 3
        }
        #expect(uploads.all.count == 3)
        await streamer.acknowledged(offset: 300)
        try await waitFor { uploads.all.count == 6 }
        await streamer.acknowledged(offset: 600)
        try await waitFor { uploads.all.count == 9 }
        await streamer.acknowledged(offset: 900)
        try await waitFor { uploads.all.count == 10 }
        #expect(uploads.completions.withLock { $0 } == 0)
        await streamer.acknowledged(offset: 1000)
        #expect(uploads.completions.withLock { $0 } == 1)
        #expect(try uploads.text() == String(repeating: "b", count: 1000))
    }

    @Test func rewindResendsFromWhatTheCoordinatorHolds() async throws {
        let spool = try makeSpool()
        defer { spool.remove() }
        let uploads = Uploads()
        var configuration = LogStreamer.Configuration()
        configuration.maximumChunkSize = 10
        let streamer = LogStreamer(jobID: "j", attempt: 2, spool: spool, configuration: configuration) { uploads.upload($0) }
        let task = Task { await streamer.run() }
        defer { task.cancel() }
        try spool.append("0123456789abcdefghij")
        await streamer.finish { uploads.completions.withLock { $0 += 1 } }
        try await waitFor { uploads.all.count == 2 }
        // The connection dropped after the coordinator stored only the first 10 bytes.
        uploads.connected.withLock { $0 = false }
        uploads.chunks.withLock { $0.removeAll() }
        uploads.connected.withLock { $0 = true }
        await streamer.rewind(to: 10)
        try await waitFor { uploads.all.count == 1 }
        #expect(uploads.all.first?.offset == 10)
        #expect(try uploads.text() == "abcdefghij")
    }

    @Test func aRepeatedAcknowledgementBelowWhatWasSentTriggersAResend() async throws {
        let spool = try makeSpool()
        defer { spool.remove() }
        let uploads = Uploads()
        var configuration = LogStreamer.Configuration()
        configuration.maximumChunkSize = 10
        let streamer = LogStreamer(jobID: "j", attempt: 1, spool: spool, configuration: configuration) { uploads.upload($0) }
        let task = Task { await streamer.run() }
        defer { task.cancel() }
        try spool.append("0123456789abcdefghijKLMNOPQRST")
        await streamer.finish { uploads.completions.withLock { $0 += 1 } }
        try await waitFor { uploads.all.count == 3 }
        await streamer.acknowledged(offset: 10)
        // The coordinator lost the chunk at 10 (a gap) and says again: "I hold 10".
        await streamer.acknowledged(offset: 10)
        try await waitFor { uploads.all.count == 5 }
        #expect(uploads.all.suffix(2).map(\.offset) == [10, 20])
        await streamer.acknowledged(offset: 30)
        #expect(uploads.completions.withLock { $0 } == 1)
        // After a reconnect the coordinator still holds everything: the status is resent.
        await streamer.rewind(to: 30)
        #expect(uploads.completions.withLock { $0 } == 2)
    }

    @Test func whileDisconnectedNothingIsCountedAsSent() async throws {
        let spool = try makeSpool()
        defer { spool.remove() }
        let uploads = Uploads()
        uploads.connected.withLock { $0 = false }
        let streamer = LogStreamer(jobID: "j", attempt: 1, spool: spool) { uploads.upload($0) }
        let task = Task { await streamer.run() }
        defer { task.cancel() }
        try spool.append("line\n")
        await streamer.finish { uploads.completions.withLock { $0 += 1 } }
        // Two refused uploads later, nothing is counted as sent.
        try await waitFor { uploads.attempts.withLock { $0 } >= 2 }
        #expect(await streamer.sentOffset == 0)
        uploads.connected.withLock { $0 = true }
        try await waitFor { uploads.all.count == 1 }
        #expect(await streamer.sentOffset == 5)
    }

    /// A spool that cannot be read is retried a bounded number of times, then the log is cut
    /// where the last good read ended and the failure is reported once; the step's final
    /// status then follows as soon as the coordinator holds the log up to the cut.
    @Test func anUnreadableSpoolIsReportedOnceAndCutsTheLogInsteadOfRetryingForever() async throws {
        let spool = try makeSpool()
        let uploads = Uploads()
        var configuration = LogStreamer.Configuration()
        configuration.maximumChunkSize = 10
        // No timed flushes: every pass below is one the test asks for.
        configuration.maximumDelay = .seconds(3600)
        configuration.maximumReadFailures = 3
        let streamer = LogStreamer(
            jobID: "j", attempt: 1, spool: spool, configuration: configuration, upload: { uploads.upload($0) },
            onFailure: { uploads.failed($0) })
        let task = Task { await streamer.run() }
        defer { task.cancel() }
        try spool.append("0123456789")
        streamer.outputAppended()
        try await waitFor { uploads.all.count == 1 }
        try spool.append("abcdefghij")
        // The spool's file descriptor is gone: every read from here on fails.
        spool.remove()
        try await waitFor {
            streamer.outputAppended()
            return !uploads.failures.withLock { $0.isEmpty }
        }
        let failures = uploads.failures.withLock { $0 }
        #expect(failures.count == 1)
        #expect(failures.first?.contains("could not read the step's log spool at byte 10") == true, "\(failures)")
        #expect(await streamer.end == 10)
        #expect(await streamer.failure != nil)
        // More wake-ups report nothing more.
        let passes = await streamer.passes
        try await waitFor {
            streamer.outputAppended()
            return await streamer.passes >= passes + 3
        }
        #expect(uploads.failures.withLock { $0.count } == 1)
        await streamer.finish { uploads.completions.withLock { $0 += 1 } }
        #expect(uploads.completions.withLock { $0 } == 0)
        await streamer.acknowledged(offset: 10)
        #expect(uploads.completions.withLock { $0 } == 1, "the status goes out once the log up to the cut is held")
    }
}

/// Waits for `condition`, returning as soon as it holds. The deadline guards against a
/// hang, not a timing assertion: when the full suite starts every integration test's
/// processes at once, 2 cores can leave a unit test unscheduled for seconds.
func waitFor(_ timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(5))
    }
    #expect(try await condition(), "condition not met within \(timeout)")
}
