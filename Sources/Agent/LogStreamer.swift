import GantryProtocol
import NIOCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Ships one attempt's spooled log to the coordinator as compressed chunks.
///
/// Chunking follows Buildkite's log streamer: a chunk is cut when `maximumChunkSize` raw
/// bytes are waiting, or at the latest `maximumDelay` after output appeared, so a quiet
/// step's lines show up within ~100 ms and a chatty one ships full chunks. At most
/// `maximumInFlight` unacknowledged bytes are outstanding. Uploading is injected as a
/// callback (returning false while disconnected), so the streamer is tested without a
/// network; after a reconnect, `rewind(to:)` restarts from what the coordinator holds.
///
/// An acknowledgement that does not advance and lies below what was sent is the
/// coordinator saying "I hold exactly this much" (after a gap, or a finish that came too
/// early): the streamer resends from there. Each time the whole log of a finished step
/// becomes acknowledged, `onFullyAcknowledged` runs, so the final status is (re)sent.
///
/// A spool that cannot be read is retried at the next wake-ups, `maximumReadFailures`
/// times in a row at most; then the log ends where the last good read ended (`end`), and
/// `onFailure` runs once, so the owner stops the step and reports the job failed with the
/// reason. Until then the step keeps running (so a passing error costs nothing), but it
/// can never hang the job: the log the coordinator gets is complete up to `end`.
public actor LogStreamer {
    public struct Configuration: Sendable {
        public var maximumChunkSize: Int = 256 * 1024
        public var maximumDelay: Duration = .milliseconds(100)
        public var maximumInFlight: Int = 8 * 1024 * 1024
        /// Unacknowledged bytes the spool may hold on disk. When a step's output runs this
        /// far ahead of the coordinator's acknowledgements (it is down, or the network is
        /// slow), the step's output is no longer read, so the step blocks on its next write
        /// until acknowledgements catch up: nothing is dropped and the disk stays bounded.
        public var maximumSpooled: Int = 256 * 1024 * 1024
        /// Failed spool reads in a row (one per wake-up: an append, an acknowledgement, or
        /// `maximumDelay`) before the log is cut at what was read and `onFailure` runs.
        public var maximumReadFailures: Int = 3

        public init() {}
    }

    public let jobID: String
    public let attempt: UInt32
    public let spool: LogSpool
    public let configuration: Configuration
    private let upload: @Sendable (Gantry_V1_Envelope) -> Bool
    private let onFailure: @Sendable (String) async -> Void
    private var onFullyAcknowledged: (@Sendable () async -> Void)?
    private var roomWaiters: [CheckedContinuation<Void, Never>] = []
    private var abandoned = false

    public private(set) var sentOffset = 0
    public private(set) var acknowledgedOffset = 0
    private var sequence: UInt64 = 0
    private var finished = false
    private var readFailures = 0
    /// One deflate stream reset for every chunk, created on first use; nil if zlib could
    /// not allocate one (then `LogCompression` sets one up per chunk).
    ///
    /// One, not one per core: deflating two full chunks at once on a 2-core build VM was
    /// measured (scripts/benchmark, logs) at 105 MB/s for one step against 145 MB/s with
    /// one stream, because the step, the runner's pipe reads and the coordinator already
    /// fill both cores, and the hand-off cost more CPU than it saved.
    private lazy var deflater: LogDeflater? = try? LogDeflater()
    /// Wake-ups handled so far (tests wait on it rather than sleep).
    private(set) var passes = 0
    /// Where the log ends because the spool could not be read past it (nil: it can).
    private var cutAt: Int?
    /// Why the spool could not be read, once the streamer gave up on it.
    public private(set) var failure: String?
    private let wakeups: AsyncStream<Bool>
    private let wake: AsyncStream<Bool>.Continuation

    public init(
        jobID: String, attempt: UInt32, spool: LogSpool, configuration: Configuration = .init(),
        upload: @escaping @Sendable (Gantry_V1_Envelope) -> Bool,
        onFailure: @escaping @Sendable (String) async -> Void = { _ in }
    ) {
        self.jobID = jobID
        self.attempt = attempt
        self.spool = spool
        self.configuration = configuration
        self.upload = upload
        self.onFailure = onFailure
        (self.wakeups, self.wake) = AsyncStream.makeStream(of: Bool.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Runs until cancelled: wakes on appends past a chunk, on acknowledgements, and every
    /// `maximumDelay` to flush the tail.
    public func run() async {
        let wake = self.wake
        let delay = configuration.maximumDelay
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: delay)
                wake.yield(true)
            }
        }
        defer { ticker.cancel() }
        for await flushTail in wakeups {
            if Task.isCancelled { break }
            defer { passes += 1 }
            switch pump(flushTail: flushTail || finished) {
            case .sent:
                break
            case .gaveUp(let why):
                await onFailure(why)
            case .cutShorter:
                if isFullyAcknowledged, let onFullyAcknowledged { await onFullyAcknowledged() }
            }
        }
    }

    /// The length of the log as the coordinator will have it: what the spool holds, or
    /// less when the spool could not be read past `end` (then `failure` says why).
    public var end: Int { cutAt ?? spool.length }

    /// The runner wrote more output (cheap; call after every append).
    public nonisolated func outputAppended() {
        wake.yield(false)
    }

    /// The step ended: flush everything now; `onFullyAcknowledged` runs once the
    /// coordinator holds all of it (at once if it already does).
    public func finish(onFullyAcknowledged: @escaping @Sendable () async -> Void) async {
        finished = true
        self.onFullyAcknowledged = onFullyAcknowledged
        wake.yield(true)
        if acknowledgedOffset >= end { await onFullyAcknowledged() }
    }

    public var isFullyAcknowledged: Bool { finished && acknowledgedOffset >= end }

    public func acknowledged(offset: Int) async {
        if offset <= acknowledgedOffset {
            // "I hold exactly this much": resend what was sent beyond it.
            if offset == acknowledgedOffset && sentOffset > offset {
                sentOffset = offset
                wake.yield(true)
            }
            return
        }
        // The coordinator cannot hold bytes it was never sent; a larger offset is clamped.
        acknowledgedOffset = min(offset, sentOffset)
        spool.discard(upTo: acknowledgedOffset)
        resumeRoomWaiters()
        wake.yield(finished)
        if isFullyAcknowledged, let onFullyAcknowledged { await onFullyAcknowledged() }
    }

    /// Returns once the spool holds at most `maximumSpooled` unacknowledged bytes; the
    /// runner awaits this after each append (see `Configuration.maximumSpooled`).
    public func waitForRoom() async {
        while !abandoned && cutAt == nil && spool.length - acknowledgedOffset > configuration.maximumSpooled && !Task.isCancelled {
            await withCheckedContinuation { roomWaiters.append($0) }
        }
    }

    /// The attempt is no longer ours: no acknowledgement will come, so stop holding the
    /// step back (it is being killed) and let its output drain.
    public func abandon() {
        abandoned = true
        resumeRoomWaiters()
    }

    private func resumeRoomWaiters() {
        guard !roomWaiters.isEmpty,
            abandoned || cutAt != nil || spool.length - acknowledgedOffset <= configuration.maximumSpooled
        else { return }
        let waiters = roomWaiters
        roomWaiters.removeAll()
        for waiter in waiters { waiter.resume() }
    }

    /// After a reconnect: the coordinator holds `offset` bytes; resend from there.
    public func rewind(to offset: Int) async {
        acknowledgedOffset = min(offset, end)
        sentOffset = acknowledgedOffset
        wake.yield(true)
        if isFullyAcknowledged, let onFullyAcknowledged { await onFullyAcknowledged() }
    }

    private enum PumpOutcome {
        case sent
        /// The spool could not be read, `maximumReadFailures` times in a row: the log was
        /// cut there, for this reason.
        case gaveUp(String)
        /// Read failures again after a cut and a rewind below it: the log was cut shorter.
        case cutShorter
    }

    /// Sends what the in-flight window allows.
    private func pump(flushTail: Bool) -> PumpOutcome {
        while true {
            let unsent = end - sentOffset
            guard unsent > 0, sentOffset - acknowledgedOffset < configuration.maximumInFlight else { return .sent }
            guard unsent >= configuration.maximumChunkSize || flushTail else { return .sent }
            let count = min(unsent, configuration.maximumChunkSize)
            let raw: ByteBuffer
            let compressed: ByteBuffer
            do {
                raw = try spool.readBuffer(from: sentOffset, count: count)
                compressed = try deflater.map { try $0.deflate(raw) } ?? LogCompression.compress(raw)
                readFailures = 0
            } catch {
                readFailures += 1
                guard readFailures >= configuration.maximumReadFailures else { return .sent }
                // The log ends at what could be read; the owner stops the step and reports it.
                let first = cutAt == nil
                cutAt = sentOffset
                resumeRoomWaiters()
                guard first else { return .cutShorter }
                let why = "the agent could not read the step's log spool at byte \(sentOffset) (\(readFailures) attempts): \(error)"
                failure = why
                return .gaveUp(why)
            }
            sequence += 1
            let chunk = Gantry_V1_Envelope.with {
                $0.logChunk = .with {
                    $0.jobID = jobID
                    $0.attempt = attempt
                    $0.seq = sequence
                    $0.offset = UInt64(sentOffset)
                    $0.rawLength = UInt32(raw.readableBytes)
                    $0.data = Data(compressed.readableBytesView)
                }
            }
            guard upload(chunk) else { return .sent }
            sentOffset += raw.readableBytes
        }
    }
}
