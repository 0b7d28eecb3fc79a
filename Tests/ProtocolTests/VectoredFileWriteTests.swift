import Foundation
import GantryProtocol
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `VectoredFileWrite`: many received buffers in one `pwritev` (more than `IOV_MAX` of
/// them too), at an offset, each whole buffer passed on in order (to be hashed), and a
/// failed write that reports how many whole buffers it wrote.
@Suite("Vectored file writes")
struct VectoredFileWriteTests {
    static func temporaryFile() throws -> (String, Int32) {
        let path = NSTemporaryDirectory() + "gantry-pwritev-\(UUID().uuidString)"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        return (path, fd)
    }

    @Test func manyBuffersAreWrittenInOrderAtTheOffsetAndPassedOnWhole() throws {
        let (path, fd) = try Self.temporaryFile()
        defer {
            close(fd)
            unlink(path)
        }
        // 3,000 pieces of 1 to 7 bytes, some empty, and one sliced out of a larger buffer.
        var buffers: [ByteBuffer] = []
        var expected: [UInt8] = []
        for n in 0..<3_000 {
            let bytes = (0..<(n % 8)).map { UInt8(truncatingIfNeeded: n &+ $0) }
            buffers.append(ByteBuffer(bytes: bytes))
            expected += bytes
        }
        var large = ByteBuffer(bytes: Array(repeating: 9, count: 100) + [1, 2, 3])
        large.moveReaderIndex(forwardBy: 100)
        buffers.append(large)
        expected += [1, 2, 3]

        var passed: [UInt8] = []
        let outcome = VectoredFileWrite.write(buffers, to: fd, at: 10) { passed += Array($0) }
        #expect(outcome == .init(written: Int64(expected.count), error: nil))
        #expect(passed == expected)
        let contents = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(contents.count == 10 + expected.count)
        #expect(Array(contents[10...]) == expected)
        #expect(contents[..<10].allSatisfy { $0 == 0 })
    }

    @Test func aFailedWriteReportsItsErrorAndNoBytes() {
        var passed = 0
        let outcome = VectoredFileWrite.write([ByteBuffer(bytes: [1, 2, 3])], to: -1, at: 0) { passed += $0.count }
        #expect(outcome.error == EBADF && outcome.written == 0 && passed == 0)
        #expect(VectoredFileWrite.write([], to: -1, at: 0) == .init(written: 0, error: nil), "nothing to write is no call")
    }
}
