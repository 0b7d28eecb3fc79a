import GantryProtocol
import NIOCore
import NIOEmbedded
import NIOExtras
import Testing

@Suite("Framing and envelope codec", .timeLimit(.minutes(1)))
struct FramingTests {
    private func makeChannel(maximumFrameSize: Int = 1024) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try GantryFraming.addHandlers(to: channel.pipeline.syncOperations, maximumFrameSize: maximumFrameSize)
        return channel
    }

    private func sampleEnvelope() -> Gantry_V1_Envelope {
        .with {
            $0.hello = .with {
                $0.minVersion = 1
                $0.maxVersion = 1
                $0.agentID = "host-1/1"
                $0.labels = ["os": "linux", "queue": "default"]
                $0.capacity = 2
                $0.held = [.with { $0.jobID = "j1"; $0.attempt = 3; $0.ackedLogOffset = 4096 }]
            }
        }
    }

    @Test func roundTripsThroughThePipeline() throws {
        let channel = try makeChannel()
        let envelope = sampleEnvelope()
        try channel.writeOutbound(envelope)
        // The prepender writes the prefix and the payload as two buffers.
        var wire = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { wire.writeBuffer(&part) }
        // 4-byte big-endian length, then the payload.
        let length = try #require(wire.getInteger(at: 0, endianness: .big, as: UInt32.self))
        #expect(Int(length) == wire.readableBytes - 4)
        try channel.writeInbound(wire)
        let decoded = try #require(try channel.readInbound(as: Gantry_V1_Envelope.self))
        #expect(decoded == envelope)
        _ = try channel.finish()
    }

    @Test func reassemblesFramesSplitAcrossReads() throws {
        let channel = try makeChannel()
        var wire = try EnvelopeEncoder.frame(sampleEnvelope())
        wire.writeImmutableBuffer(try EnvelopeEncoder.frame(.with { $0.ready = .with { $0.slots = 1 } }))
        // Feed one byte at a time: the decoder must wait for complete frames.
        while let byte = wire.readSlice(length: 1) {
            try channel.writeInbound(byte)
        }
        #expect(try channel.readInbound(as: Gantry_V1_Envelope.self) == sampleEnvelope())
        #expect(try channel.readInbound(as: Gantry_V1_Envelope.self)?.ready.slots == 1)
        _ = try channel.finish()
    }

    @Test func oversizedLengthPrefixIsRejectedBeforeThePayloadArrives() throws {
        let channel = try makeChannel(maximumFrameSize: 1024)
        var header = ByteBuffer()
        header.writeInteger(UInt32.max, endianness: .big)  // announces 4 GiB
        // Only the 4-byte prefix is sent: the error must come from the prefix alone,
        // without waiting for (or buffering) any of the announced payload.
        #expect(throws: ProtocolError.frameTooLarge(length: UInt32.max, maximum: 1024)) {
            try channel.writeInbound(header)
        }
        _ = try? channel.finish()
    }

    @Test func frameExactlyAtTheLimitIsAccepted() throws {
        let channel = try makeChannel(maximumFrameSize: 64)
        var wire = ByteBuffer()
        let payload: [UInt8] = try Gantry_V1_Envelope.with { $0.drain = .with { $0.reason = String(repeating: "x", count: 60) } }
            .serializedBytes()
        #expect(payload.count <= 64)
        wire.writeInteger(UInt32(payload.count), endianness: .big)
        wire.writeBytes(payload)
        try channel.writeInbound(wire)
        #expect(try channel.readInbound(as: Gantry_V1_Envelope.self)?.drain.reason.count == 60)
        _ = try channel.finish()
    }

    @Test func truncatedFrameAtEOFIsAnError() throws {
        let channel = try makeChannel()
        var wire = try EnvelopeEncoder.frame(sampleEnvelope())
        wire.moveWriterIndex(to: wire.writerIndex - 3)
        try channel.writeInbound(wire)
        #expect(try channel.readInbound(as: Gantry_V1_Envelope.self) == nil)
        #expect(throws: ProtocolError.self) {
            try channel.finish()
        }
    }

    @Test func garbagePayloadIsMalformed() throws {
        let channel = try makeChannel()
        var wire = ByteBuffer()
        wire.writeInteger(UInt32(5), endianness: .big)
        wire.writeBytes([0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect {
            try channel.writeInbound(wire)
        } throws: { error in
            if case .malformed = error as? ProtocolError { return true }
            return false
        }
        _ = try? channel.finish()
    }

    @Test func unknownMessageTypeIsReported() throws {
        // Field 99 is not a known oneof case: a newer peer's message.
        var payload = ByteBuffer()
        payload.writeBytes([0x9A, 0x06, 0x00])  // tag (99 << 3 | 2) as varint, length 0
        #expect(throws: ProtocolError.unknownMessage) {
            try EnvelopeDecoder.decode(payload)
        }
        let channel = try makeChannel()
        var wire = ByteBuffer()
        wire.writeInteger(UInt32(payload.readableBytes), endianness: .big)
        wire.writeImmutableBuffer(payload)
        #expect(throws: ProtocolError.unknownMessage) {
            try channel.writeInbound(wire)
        }
        _ = try? channel.finish()
    }
}

@Suite("Protocol version negotiation", .timeLimit(.minutes(1)))
struct ProtocolVersionTests {
    @Test func picksTheHighestCommonVersion() {
        #expect(ProtocolVersion.negotiate(peerMinimum: 1, peerMaximum: 5, localMinimum: 1, localMaximum: 3) == 3)
        #expect(ProtocolVersion.negotiate(peerMinimum: 2, peerMaximum: 2, localMinimum: 1, localMaximum: 3) == 2)
    }

    @Test func refusesDisjointRanges() {
        #expect(ProtocolVersion.negotiate(peerMinimum: 4, peerMaximum: 6, localMinimum: 1, localMaximum: 3) == nil)
        #expect(ProtocolVersion.negotiate(peerMinimum: 0, peerMaximum: 0, localMinimum: 1, localMaximum: 3) == nil)
        #expect(ProtocolVersion.negotiate(peerMinimum: 3, peerMaximum: 1) == nil)
    }

    @Test func errorSaysWhichSideToUpgrade() {
        let error = ProtocolError.unsupportedVersion(peerMinimum: 7, peerMaximum: 9)
        #expect(error.code == .unsupportedVersion)
        #expect(error.description.contains("7...9"))
        #expect(error.description.contains("upgrade"))
    }
}
