import FuzzSupport
import ProtocolSamples
import GantryProtocol
import NIOCore

/// Bytes → `LogCompression.decompress`, the inflate the coordinator runs on every log
/// chunk it receives and on every log range it serves, then a round trip through
/// `LogCompression.compress`.
///
/// Input layout: bytes 0–2 are the expected length (24-bit big-endian, reduced modulo
/// 1 MiB + 1, as `WireLimits.chunkRawLength` bounds it), the rest is the deflate stream.
///
/// Properties checked (a violation traps):
/// - inflating never yields anything but exactly the expected length;
/// - compressing the stream bytes and inflating the result gives them back byte for byte.
@main
enum LogInflateFuzz {
    static let maximumLength = Int(WireLimits.chunkRawLength)

    static func main() {
        Fuzzer.main(seeds: seeds, testOneInput: { data, count in
            LogInflateFuzz.run(Fuzzer.bytes(data, count))
            return 0
        })
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        guard input.count >= 3 else { return }
        let announced = Int(input[0]) << 16 | Int(input[1]) << 8 | Int(input[2])
        let expectedLength = announced % (maximumLength + 1)
        let payload = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: input.dropFirst(3)))

        if let inflated = try? LogCompression.decompress(payload, expectedLength: expectedLength),
            inflated.readableBytes != expectedLength
        {
            Fuzzer.fail("inflated \(inflated.readableBytes) bytes, expected \(expectedLength)")
        }

        do {
            let compressed = try LogCompression.compress(payload)
            let back = try LogCompression.decompress(compressed, expectedLength: payload.readableBytes)
            if back != payload {
                Fuzzer.fail("round trip changed \(payload.readableBytes) bytes into \(back.readableBytes) other bytes")
            }
        } catch {
            Fuzzer.fail("round trip of \(payload.readableBytes) bytes failed: \(error)")
        }
    }

    static func seeds() throws -> [Seed] {
        func seed(_ name: String, length: Int, _ deflated: ByteBuffer) -> Seed {
            Seed(name, [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + Array(deflated.readableBytesView))
        }
        let log = SampleMessages.logText()
        let deflatedLog = try LogCompression.compress(ByteBuffer(bytes: log))
        let zeros = [UInt8](repeating: 0, count: 64 * 1024)
        let deflatedZeros = try LogCompression.compress(ByteBuffer(bytes: zeros))
        let empty = try LogCompression.compress(ByteBuffer())
        return [
            seed("log", length: log.count, deflatedLog),
            seed("log-announced-short", length: log.count - 1, deflatedLog),
            seed("log-announced-long", length: log.count + 1, deflatedLog),
            seed("zeros-64k", length: zeros.count, deflatedZeros),
            seed("empty", length: 0, empty),
            // A stored (uncompressed) block: BFINAL=1, BTYPE=00, LEN=5, NLEN=~5.
            seed("stored-block", length: 5, ByteBuffer(bytes: [0x01, 0x05, 0x00, 0xFA, 0xFF] + Array("hello".utf8))),
        ]
    }
}

/// libFuzzer's entry point by its conventional name, for tools that link the target
/// without the `@main` above (libFuzzer's own `main`, other fuzzing engines).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    LogInflateFuzz.run(Fuzzer.bytes(data, count))
    return 0
}
