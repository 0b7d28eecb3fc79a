import GantryProtocol
import NIOCore
import Testing

@Suite("Log chunk compression")
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
}
