import Foundation
import GantryProtocol
import NIOCore
import NIOEmbedded
import Testing

/// The bounds every inbound message is held to, the field count taken before decoding,
/// the raisable frame limit, and the escaping of peer text in log lines.
@Suite("Message validation, wire shape and log escaping", .timeLimit(.minutes(1)))
struct MessageValidationTests {
    func problem(_ envelope: Gantry_V1_Envelope) -> String? {
        do {
            try MessageValidation.validate(envelope, authenticated: true)
            return nil
        } catch {
            return error.description
        }
    }

    func chunk(offset: UInt64 = 0, rawLength: UInt32 = 5, data: Data = Data([1, 2, 3]), attempt: UInt32 = 1) -> Gantry_V1_Envelope {
        .with {
            $0.logChunk = .with {
                $0.jobID = "j"
                $0.attempt = attempt
                $0.offset = offset
                $0.rawLength = rawLength
                $0.data = data
            }
        }
    }

    @Test func offsetsAndLengthsThatCouldOverflowAreRefused() {
        #expect(problem(chunk()) == nil)
        #expect(problem(chunk(offset: WireLimits.logOffset)) == nil)
        for offset in [WireLimits.logOffset + 1, UInt64(1) << 63, UInt64.max] {
            #expect(problem(chunk(offset: offset))?.contains("log_chunk.offset") == true)
        }
        #expect(problem(chunk(rawLength: 0))?.contains("raw_length") == true)
        #expect(problem(chunk(rawLength: WireLimits.chunkRawLength + 1))?.contains("raw_length") == true)
        #expect(problem(chunk(rawLength: 10, data: Data(count: 2000)))?.contains("not a deflate stream") == true)
        #expect(problem(chunk(attempt: 0))?.contains("attempt must be at least 1") == true)
        let finished = Gantry_V1_Envelope.with {
            $0.jobFinished = .with {
                $0.jobID = "j"
                $0.attempt = 1
                $0.logLength = UInt64(1) << 63
            }
        }
        #expect(problem(finished)?.contains("job_finished.log_length") == true)
    }

    @Test func helloFieldsAreBounded() {
        func hello(_ change: (inout Gantry_V1_Hello) -> Void) -> Gantry_V1_Envelope {
            var hello = Gantry_V1_Hello.with {
                $0.agentID = "host/1"
                $0.capacity = 1
            }
            change(&hello)
            return .with { $0.hello = hello }
        }
        #expect(problem(hello { _ in }) == nil)
        #expect(problem(hello { $0.agentID = "" }) != nil)
        // Agent ids are `AgentID`s (AgentIDTests has the edge cases): each refusal names the field.
        #expect(problem(hello { $0.agentID = "host/1\nforged" })?.contains("hello.agent_id") == true)
        for dotted in ["host/..", "../x", "host/.", "host//1", "/host", "host/a/b"] {
            #expect(problem(hello { $0.agentID = dotted })?.contains("is not a valid agent id") == true, "\(dotted)")
        }
        #expect(problem(hello { $0.agentID = String(repeating: "a", count: 254) }) != nil)
        #expect(problem(hello { $0.agentID = "host" }) == nil, "a bare enrolled name is an id")
        #expect(problem(hello { $0.labels = ["a=b": "c"] })?.contains("'='") == true)
        #expect(problem(hello { $0.labels = ["os": "linux\n"] })?.contains("control") == true)
        #expect(problem(hello { $0.labels = Dictionary(uniqueKeysWithValues: (0..<64).map { ("k\($0)", "v") }) }) == nil)
        #expect(problem(hello { $0.labels = Dictionary(uniqueKeysWithValues: (0..<65).map { ("k\($0)", "v") }) }) != nil)
        #expect(problem(hello { $0.labels = ["os": String(repeating: "x", count: 256)] }) != nil)
        #expect(problem(hello { $0.capacity = WireLimits.capacity + 1 }) != nil)
        #expect(problem(hello { $0.held = (0..<257).map { index in .with { $0.jobID = "j\(index)"; $0.attempt = 1 } } }) != nil)
    }

    @Test func drainIdleAndEnrollmentNameAgentsTheWayAgentIDDoes() {
        #expect(problem(.with { $0.drainIdle = .with { $0.agentIds = ["h/scale-1", "h/scale-2"]; $0.count = 1 } }) == nil)
        #expect(problem(.with { $0.drainIdle = .with { $0.agentIds = ["h/../x"]; $0.count = 1 } })?.contains("drain_idle.agent_ids") == true)
        let enroll = { (name: String) in
            Gantry_V1_Envelope.with { $0.enrollRequest = .with { $0.agentID = name; $0.token = "t"; $0.csrDer = Data([1]) } }
        }
        #expect(problem(enroll("build-07")) == nil)
        #expect(problem(enroll("build 07"))?.contains("enroll_request.agent_id") == true)
        #expect(problem(enroll("h/1")) != nil, "an enrolled name has no slot")
    }

    @Test func heartbeatsNameABoundedNumberOfAttempts() {
        let ok = Gantry_V1_Envelope.with {
            $0.heartbeat = .with { $0.running = (0..<256).map { index in .with { $0.jobID = "j\(index)"; $0.attempt = 1 } } }
        }
        #expect(problem(ok) == nil)
        var tooMany = ok
        tooMany.heartbeat.running.append(.with { $0.jobID = "x"; $0.attempt = 1 })
        #expect(problem(tooMany)?.contains("heartbeat.running") == true)
    }

    @Test func aHeartbeatsNotReadyReasonIsBoundedText() {
        var reason = Gantry_V1_Envelope.with { $0.heartbeat = .with { $0.notReadyReason = String(repeating: "d", count: WireLimits.messageLength) } }
        #expect(problem(reason) == nil)
        reason.heartbeat.notReadyReason += "d"
        #expect(problem(reason)?.contains("heartbeat.not_ready_reason") == true)
    }

    /// A frame of many tiny repeated entries is refused before SwiftProtobuf allocates one
    /// object per entry.
    @Test func fieldsAreCountedBeforeDecoding() throws {
        let wide = Gantry_V1_Envelope.with {
            $0.heartbeat = .with { $0.running = Array(repeating: Gantry_V1_RunningAttempt(), count: WireLimits.fieldsPerMessage + 1) }
        }
        let bytes: [UInt8] = try wide.serializedBytes()
        #expect(throws: ProtocolError.self) { _ = try EnvelopeDecoder.decode(ByteBuffer(bytes: bytes)) }
        var narrow = wide
        narrow.heartbeat.running.removeLast(2)
        let fine: [UInt8] = try narrow.serializedBytes()
        #expect(try EnvelopeDecoder.decode(ByteBuffer(bytes: fine)).heartbeat.running.count == WireLimits.fieldsPerMessage - 1)
        // Repeated copies of the body merge when decoded, so their fields add up (found by
        // EnvelopeFuzz: two bodies of 2,100 entries each passed a per-copy count).
        var half = wide
        half.heartbeat.running = Array(repeating: Gantry_V1_RunningAttempt(), count: WireLimits.fieldsPerMessage / 2 + 10)
        let once: [UInt8] = try half.serializedBytes()
        #expect(throws: ProtocolError.self) { _ = try EnvelopeDecoder.decode(ByteBuffer(bytes: once + once)) }
        // Malformed wire data is refused by the scan itself, without trapping.
        for garbage: [UInt8] in [[0x0A, 0xFF], [0x0A, 0x05, 0x01], [0x00], [0x0F], Array(repeating: 0xFF, count: 11)] {
            #expect(throws: ProtocolError.self) { _ = try EnvelopeDecoder.decode(ByteBuffer(bytes: garbage)) }
        }
    }

    /// A connection starts at the small anonymous limit and accepts big frames only once
    /// the limit is raised.
    @Test func theFrameLimitCanBeRaisedAfterTheHandshake() throws {
        let limit = FrameSizeLimit(WireLimits.unauthenticatedFrameSize)
        let channel = EmbeddedChannel()
        try GantryFraming.addHandlers(to: channel.pipeline.syncOperations, limit: limit, maximumFrameSize: 1024 * 1024)
        let big = Gantry_V1_Envelope.with { $0.drain = .with { $0.reason = String(repeating: "x", count: 100 * 1024) } }
        limit.set(1024 * 1024)
        try channel.writeInbound(try EnvelopeEncoder.frame(big))
        #expect(try channel.readInbound(as: Gantry_V1_Envelope.self)?.drain.reason.count == 100 * 1024)
        limit.set(WireLimits.unauthenticatedFrameSize)
        #expect(throws: ProtocolError.self) { try channel.writeInbound(try EnvelopeEncoder.frame(big)) }
        _ = try? channel.finish()
    }

    @Test func peerTextIsEscapedForLogs() {
        #expect("boom\nFORGED".logSafe() == "boom\\nFORGED")
        #expect("a\r\u{1B}[31m\u{2028}b".logSafe() == "a\\r\\u{1b}[31m\\u{2028}b")
        #expect(String(repeating: "x", count: 600).logSafe().count == 513)
        #expect("plain/ascii-1".logSafe() == "plain/ascii-1")
    }
}

@Suite("Path components", .timeLimit(.minutes(1)))
struct PathComponentTests {
    /// The byte scan agrees with splitting on `/` for every string over a small alphabet.
    @Test func theByteScanAgreesWithSplitting() {
        let alphabet: [Character] = ["a", ".", "/"]
        var strings = [""]
        for _ in 0..<6 { strings = strings + strings.flatMap { s in alphabet.map { s + String($0) } } }
        for value in Set(strings) {
            let reference = value.split(separator: "/", omittingEmptySubsequences: false).contains {
                $0 == "." || $0 == ".." || $0.isEmpty
            }
            #expect(MessageValidation.hasBadPathComponent(value.utf8) == reference, "\(value)")
        }
    }
}
