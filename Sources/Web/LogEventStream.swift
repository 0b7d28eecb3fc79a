import Foundation
import GantryCoordinator
import GantryProtocol
import NIOCore

/// A job's log as server-sent events, for the log page.
///
/// - `start` `{attempt, offset, line}`: where the stream begins; `line` is the number of
///   the first line shown (nil on a resume: the page keeps counting).
/// - `log` `{t}` with id `ATTEMPT:OFFSET`: text, ending before byte OFFSET of the
///   attempt's log. Only whole UTF-8 characters are sent, so an id is always a byte
///   offset a resume can start at; a browser that reconnects sends the last id as
///   `Last-Event-ID` and the stream goes on from that byte, losing and repeating nothing.
/// - `attempt` `{attempt, reason}`: the job was retried; the new attempt's log follows.
/// - `end` `{state}`: the job ended and its whole log was sent.
///
/// Waiting is event-driven (`CoordinatorCore.watch`); each `log` event holds at most
/// `maximumEventBytes` bytes so the page renders a big log in many small steps.
struct LogEventStream: Sendable {
    enum Start: Equatable {
        /// The last `tailBytes` of the current attempt's log, from a line's start.
        case tail
        case beginning
        /// After byte `offset` of `attempt`'s log (from `Last-Event-ID`).
        case resume(attempt: Int, offset: Int)

        init?(lastEventID: String?, from: String?) {
            if let lastEventID, !lastEventID.isEmpty {
                let parts = lastEventID.split(separator: ":")
                guard parts.count == 2, let attempt = Int(parts[0]), let offset = Int(parts[1]), attempt >= 0,
                    attempt <= Int(UInt32.max), offset >= 0
                else { return nil }
                self = .resume(attempt: attempt, offset: offset)
            } else {
                switch from ?? "tail" {
                case "tail": self = .tail
                case "start", "0": self = .beginning
                default: return nil
                }
            }
        }
    }

    static let tailBytes = 256 * 1024
    static let maximumEventBytes = 32 * 1024

    let core: CoordinatorCore
    let jobID: String
    let start: Start
    let lines: TailLineCounter

    /// Too many log tails are being numbered at once: try again shortly.
    struct Busy: Error {}

    /// A comment line sent after this long without an event: writing it is how a stream
    /// whose browser left finds out (and frees its watcher and its `OpenStreams` slot)
    /// while the job is quiet; it also keeps proxies from timing the stream out.
    static let keepalive: Duration = .seconds(15)

    private enum Wake: Sendable { case changed, keepalive }

    func run(_ send: (String) async throws -> Void) async throws {
        // The job's changes and a keepalive tick, merged into one stream; both feeding
        // tasks end with this function.
        let updates = await core.watch(jobID: jobID)
        let (wakes, wake) = AsyncStream.makeStream(of: Wake.self, bufferingPolicy: .bufferingNewest(2))
        let forwarder = Task {
            for await _ in updates { wake.yield(.changed) }
            wake.finish()
        }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.keepalive)
                wake.yield(.keepalive)
            }
        }
        defer {
            forwarder.cancel()
            ticker.cancel()
        }
        var iterator = wakes.makeAsyncIterator()
        guard var job = try await core.job(id: jobID) else { return }
        var attempt = job.attempt
        var offset = 0
        switch start {
        case .resume(let resumed, let at) where resumed == job.attempt:
            offset = min(at, job.logLength)
            try await send(Self.event("start", ["attempt": attempt, "offset": offset]))
        case .resume:
            try await send(Self.event("attempt", ["attempt": attempt, "reason": job.reason ?? "lost"]))
            try await send(Self.event("start", ["attempt": attempt, "offset": 0, "line": 1]))
        case .beginning:
            try await send(Self.event("start", ["attempt": attempt, "offset": 0, "line": 1]))
        case .tail:
            guard
                let tail = try await lines.start(
                    store: core.store, jobID: jobID, attempt: attempt, length: job.logLength, tailBytes: Self.tailBytes,
                    finished: job.isTerminal)
            else { throw Busy() }
            offset = tail.offset
            try await send(Self.event("start", ["attempt": attempt, "offset": tail.offset, "line": tail.line]))
        }
        var pending: [UInt8] = []
        while true {
            while true {
                let chunks = try core.store.logChunks(jobID: jobID, attempt: attempt, from: offset)
                if chunks.isEmpty { break }
                for chunk in chunks {
                    var raw = try LogCompression.decompress(ByteBuffer(data: chunk.data), expectedLength: chunk.rawLength)
                    if chunk.offset < offset { raw.moveReaderIndex(forwardBy: min(offset - chunk.offset, raw.readableBytes)) }
                    offset = chunk.offset + chunk.rawLength
                    pending += raw.readableBytesView
                    // Cut events from the front by index, then drop what was sent once:
                    // removing each piece from the array's front would copy the rest each time.
                    var start = 0
                    while start < pending.count {
                        let piece = Self.completeUTF8Prefix(Array(pending[start...].prefix(Self.maximumEventBytes)), maximum: Self.maximumEventBytes)
                        guard piece > 0 else { break }
                        let sent = offset - (pending.count - start) + piece
                        try await send(
                            Self.event(
                                "log", ["t": String(decoding: pending[start..<(start + piece)], as: UTF8.self)], id: "\(attempt):\(sent)"))
                        start += piece
                    }
                    pending.removeFirst(start)
                }
            }
            if job.isTerminal {
                if !pending.isEmpty {
                    try await send(Self.event("log", ["t": String(decoding: pending, as: UTF8.self)], id: "\(attempt):\(offset)"))
                }
                try await send(Self.event("end", ["state": job.state.rawValue]))
                return
            }
            var woke = await iterator.next()
            while woke == .keepalive {
                try await send(": keepalive\n\n")
                woke = await iterator.next()
            }
            guard woke != nil else { return }
            guard let next = try await core.job(id: jobID) else { return }
            job = next
            if job.attempt != attempt {
                attempt = job.attempt
                offset = 0
                pending = []
                try await send(Self.event("attempt", ["attempt": attempt, "reason": job.reason ?? "lost"]))
            }
        }
    }

    /// How many of `bytes`' first `maximum` bytes end on a whole UTF-8 character: a
    /// character cut by a chunk's end waits for the rest.
    static func completeUTF8Prefix(_ bytes: [UInt8], maximum: Int) -> Int {
        var end = min(bytes.count, maximum)
        guard end > 0 else { return 0 }
        var lead = end - 1
        while lead > 0, end - lead < 4, bytes[lead] & 0xC0 == 0x80 { lead -= 1 }
        let first = bytes[lead]
        let length = first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : first >= 0xC0 ? 2 : 1
        if first >= 0xC0, lead + length > end {
            // Cut before the incomplete character, unless it is all there is (invalid
            // bytes then go out as replacement characters rather than stall the stream).
            end = lead > 0 ? lead : (bytes.count >= maximum ? end : 0)
        }
        return end
    }

    static func event(_ name: String, _ fields: [String: any Sendable], id: String? = nil) -> String {
        var text = ""
        if let id { text += "id: \(id)\n" }
        text += "event: \(name)\n"
        let json = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]))
            .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return text + "data: \(json)\n\n"
    }
}
