import GantryProtocol
import NIOCore
import Testing

@Suite("Log chunk inflater", .timeLimit(.minutes(1)))
struct LogChunkInflaterTests {
    static func deflated(_ text: String) throws -> [UInt8] {
        let buffer = try LogCompression.compress(ByteBuffer(string: text))
        return Array(buffer.readableBytesView)
    }

    @Test func acceptsExactlyTheAnnouncedLengthAcrossManyScratchBuffers() throws {
        let inflater = try LogChunkInflater()
        let big = String(repeating: "line of a build log 0123456789\n", count: 33_000)  // ~1 MB, many 64 KiB passes
        try inflater.check(try Self.deflated(big), expectedLength: big.utf8.count)
        try inflater.check(try Self.deflated("hello\n"), expectedLength: 6)
    }

    @Test func refusesAWrongLengthATruncatedStreamTrailingBytesAndGarbage() throws {
        let inflater = try LogChunkInflater()
        let good = try Self.deflated("hello world\n")
        #expect(throws: ProtocolError.self) { try inflater.check(good, expectedLength: 11) }
        #expect(throws: ProtocolError.self) { try inflater.check(good, expectedLength: 13) }
        #expect(throws: ProtocolError.self) { try inflater.check(good.dropLast(2), expectedLength: 12) }
        #expect(throws: ProtocolError.self) { try inflater.check(good + [0, 1, 2], expectedLength: 12) }
        #expect(throws: ProtocolError.self) { try inflater.check([0xFF, 0xFE, 0x00, 0x13], expectedLength: 4) }
        // The stream is reset for the next chunk whatever the last one did.
        try inflater.check(good, expectedLength: 12)
    }

    @Test func stopsABombAtTheAnnouncedLength() throws {
        let inflater = try LogChunkInflater()
        let bomb = try Self.deflated(String(repeating: "A", count: 4_000_000))
        #expect(bomb.count < 20_000, "a 4 MB bomb in a small chunk")
        #expect(throws: ProtocolError.self) { try inflater.check(bomb, expectedLength: 1_000_000) }
    }
}

@Suite("Log deflater", .timeLimit(.minutes(1)))
struct LogDeflaterTests {
    /// Every chunk from a reused stream is independent: it inflates on its own, to its bytes.
    @Test func eachChunkOfAReusedStreamInflatesOnItsOwn() throws {
        let deflater = try LogDeflater()
        let inflater = try LogChunkInflater()
        for text in ["first\n", String(repeating: "a long line of output 42\n", count: 20_000), "", "last\n"] where !text.isEmpty {
            let compressed = try deflater.deflate(ByteBuffer(string: text))
            try inflater.check(Array(compressed.readableBytesView), expectedLength: text.utf8.count)
            let inflated = try LogCompression.decompress(compressed, expectedLength: text.utf8.count)
            #expect(String(buffer: inflated) == text)
        }
    }
}
