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
        let bytes: [UInt8]
        do {
            bytes = try envelope.serializedBytes()
            let again = try Gantry_V1_Envelope(serializedBytes: bytes)
            if again != envelope { Fuzzer.fail("re-encoding changes the envelope: \(envelope) became \(again)") }
        } catch {
            Fuzzer.fail("a decoded envelope does not re-encode and decode: \(error)")
        }
        // WireShape bounds what decoding allocates: the message it let through must itself
        // be within the bound (protobuf merges a repeated body field into one message, so a
        // bound checked per occurrence would not hold for the decoded result).
        do {
            try bytes.withUnsafeBytes { buffer in
                try WireShape.check(buffer, maximumFields: WireLimits.fieldsPerMessage)
            }
        } catch {
            Fuzzer.fail("WireShape accepted a frame that decodes to more than it allows: \(error)")
        }
    }

    /// What the coordinator computes from a validated message (CoordinatorCore), written
    /// with trapping arithmetic on purpose: `MessageValidation` promises none of it traps.
    static func afterValidation(_ envelope: Gantry_V1_Envelope) {
        for text in loggedText(envelope) { checkLogSafe(text) }
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

    /// The peer's strings the coordinator puts in its log (through `logSafe`).
    static func loggedText(_ envelope: Gantry_V1_Envelope) -> [String] {
        switch envelope.body {
        case .hello(let hello): return [hello.agentID, hello.hostname, hello.agentVersion] + hello.labels.flatMap { [$0.key, $0.value] }
        case .enrollRequest(let request): return [request.agentID]
        case .leaseAck(let ack): return [ack.jobID, ack.reason]
        case .jobFinished(let finished): return [finished.jobID, finished.message]
        case .drain(let drain): return [drain.reason]
        case .error(let error): return [error.message, error.jobID]
        default: return []
        }
    }

    /// `logSafe` must leave no character that could end or forge a log line, and bound the
    /// line: at most `maximum` characters, each escaped to at most 10 (`\u{10ffff}`), plus `…`.
    static func checkLogSafe(_ text: String) {
        let safe = text.logSafe(maximum: 64)
        for scalar in safe.unicodeScalars {
            let value = scalar.value
            if value < 0x20 || value == 0x7F || (0x80..<0xA0).contains(value) || value == 0x2028 || value == 0x2029 {
                Fuzzer.fail("logSafe left U+\(String(value, radix: 16)) in \(safe.debugDescription)")
            }
        }
        if safe.unicodeScalars.count > 64 * 10 + 1 {
            Fuzzer.fail("logSafe made \(safe.unicodeScalars.count) characters out of \(text.unicodeScalars.count)")
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
