import FuzzSupport
import ProtocolSamples
import GantryProtocol
import NIOCore
import SwiftProtobuf

/// Bytes (one frame's payload) → `EnvelopeDecoder.decode`, the coordinator's path for
/// every inbound message: `WireShape`'s pre-scan, the protobuf decode, then
/// `MessageValidation.validate` as a first message (`authenticated: false`) and as a later
/// one (`true`). For a log chunk that passes, the inflate `LogChunkCheck` runs before the
/// chunk is stored, with the same arguments.
///
/// Properties checked (a violation traps, so libFuzzer keeps the input):
/// - a decoded envelope has a body, and re-encoding then decoding it gives it back;
/// - after validation, the arithmetic the coordinator does on the message's numbers
///   (`CoordinatorCore`: `Int(offset) + Int(raw_length)`, `Int(log_length)`, …) cannot trap;
/// - an inflated chunk is exactly `raw_length` bytes.
@main
enum EnvelopeFuzz {
    static func main() {
        Fuzzer.main(seeds: seeds, testOneInput: { data, count in
            EnvelopeFuzz.run(Fuzzer.bytes(data, count))
            return 0
        })
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        let envelope: Gantry_V1_Envelope
        do {
            envelope = try EnvelopeDecoder.decode(ByteBuffer(bytes: input))
        } catch {
            return
        }
        guard envelope.body != nil else { Fuzzer.fail("decode returned an envelope without a body") }
        roundTrip(envelope)
        for authenticated in [false, true] {
            do {
                try MessageValidation.validate(envelope, authenticated: authenticated)
            } catch {
                continue
            }
            afterValidation(envelope)
        }
    }

    static func roundTrip(_ envelope: Gantry_V1_Envelope) {
        do {
            let bytes: [UInt8] = try envelope.serializedBytes()
            let again = try Gantry_V1_Envelope(serializedBytes: bytes)
            if again != envelope { Fuzzer.fail("re-encoding changes the envelope: \(envelope) became \(again)") }
        } catch {
            Fuzzer.fail("a decoded envelope does not re-encode and decode: \(error)")
        }
    }

    /// What the coordinator computes from a validated message (CoordinatorCore), written
    /// with trapping arithmetic on purpose: `MessageValidation` promises none of it traps.
    static func afterValidation(_ envelope: Gantry_V1_Envelope) {
        switch envelope.body {
        case .hello(let hello):
            _ = Int(max(hello.capacity, 1))
            for held in hello.held {
                _ = Int(held.attempt)
                _ = Int(held.ackedLogOffset) + Int(UInt32.max)
            }
        case .ready(let ready):
            _ = Int(ready.slots)
        case .logChunk(let chunk):
            let end = Int(chunk.offset) + Int(chunk.rawLength)
            if end < Int(chunk.offset) { Fuzzer.fail("offset + raw_length went backwards") }
            if chunk.attempt < 1 { Fuzzer.fail("log chunk with attempt 0 passed validation") }
            // LogChunkCheck.problem(with:), which the listener runs before the core sees it.
            do {
                let raw = try LogCompression.decompress(
                    ByteBuffer(bytes: chunk.data), expectedLength: Int(chunk.rawLength))
                if raw.readableBytes != Int(chunk.rawLength) {
                    Fuzzer.fail("chunk inflated to \(raw.readableBytes) bytes, raw_length \(chunk.rawLength)")
                }
            } catch {
                // Refused with an error frame to the agent: fine.
            }
        case .heartbeat(let heartbeat):
            for running in heartbeat.running {
                _ = Int(running.attempt)
                _ = Int(running.logOffset) + Int(UInt32.max)
            }
        case .jobFinished(let finished):
            _ = Int(finished.logLength) + Int(UInt32.max)
            _ = Int(finished.attempt)
            _ = Int(finished.exitStatus)
        case .drainIdle(let request):
            _ = Int(request.count)
        default:
            break
        }
    }

    /// Every message kind's payload as the real encoder writes it (the frame without its
    /// 4-byte length prefix).
    static func seeds() throws -> [Seed] {
        try SampleMessages.frames().map { Seed($0.name, Array($0.frame.dropFirst(4))) }
    }
}

/// libFuzzer's entry point by its conventional name, for tools that link the target
/// without the `@main` above (libFuzzer's own `main`, other fuzzing engines).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    EnvelopeFuzz.run(Fuzzer.bytes(data, count))
    return 0
}
