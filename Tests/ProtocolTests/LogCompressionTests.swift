import GantryProtocol
import NIOCore
import Testing

@Suite("Log chunk compression", .timeLimit(.minutes(1)))
struct LogCompressionTests {
    static func buildLog(lines: Int) -> String {
        var text = ""
        for i in 0..<lines {
            text += "[\(i % 60)s] Compiling Module\(i % 37)/File\(i).swift (\(i * 7 % 1000) ms) warning: unused \(i % 13)\n"
        }
        return text
    }

    @Test func roundTripsAndCompressesBuildLogs() throws {
        let text = Self.buildLog(lines: 2000)
        let compressed = try LogCompression.compress(ByteBuffer(string: text))
        let restored = try LogCompression.decompress(compressed, expectedLength: text.utf8.count)
        #expect(String(buffer: restored) == text)
        #expect(compressed.readableBytes * 4 < text.utf8.count)
    }

    @Test func refusesAChunkThatInflatesBeyondItsHeader() throws {
        let compressed = try LogCompression.compress(ByteBuffer(string: String(repeating: "a", count: 10_000)))
        #expect(throws: (any Error).self) {
            try LogCompression.decompress(compressed, expectedLength: 100)
        }
    }

    @Test func refusesAShortChunk() throws {
        let compressed = try LogCompression.compress(ByteBuffer(string: "hello"))
        #expect(throws: (any Error).self) {
            try LogCompression.decompress(compressed, expectedLength: 50)
        }
    }

    @Test func refusesCorruptAndTrailingData() throws {
        #expect(throws: ProtocolError.self) {
            try LogCompression.decompress(ByteBuffer(bytes: [0xff, 0xfe, 0xfd, 0xfc, 0x00, 0x11]), expectedLength: 10)
        }
        var compressed = try LogCompression.compress(ByteBuffer(string: "hello, world"))
        compressed.writeString("trailing")
        #expect(throws: ProtocolError.self) {
            try LogCompression.decompress(compressed, expectedLength: 12)
        }
    }

    @Test func refusesAChunkThatOverrunsItsHeaderByOneByte() throws {
        let compressed = try LogCompression.compress(ByteBuffer(string: String(repeating: "b", count: 4097)))
        #expect(throws: ProtocolError.self) {
            try LogCompression.decompress(compressed, expectedLength: 4096)
        }
        #expect(try LogCompression.decompress(compressed, expectedLength: 4097).readableBytes == 4097)
    }
}
