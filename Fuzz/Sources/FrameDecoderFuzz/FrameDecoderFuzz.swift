import FuzzSupport
import ProtocolSamples
import GantryProtocol
import NIOCore
import NIOEmbedded

/// Bytes → the inbound channel pipeline every connection uses (`GantryFraming`: the
/// size-capped frame decoder, then the envelope decoder) on an `EmbeddedChannel`.
///
/// Input layout: the first byte chooses how the rest arrives, the rest is the byte stream.
/// - bit 7 set: the coordinator's configuration: the limit starts at
///   `WireLimits.unauthenticatedFrameSize` and is raised to `WireLimits.agentFrameSize`
///   once the first envelope has passed `MessageValidation` (as `AgentListener` does after
///   the handshake), so the raise can land while a frame is half read. Clear: the agent's
///   configuration, a fixed `GantryFraming.defaultMaximumFrameSize`.
/// - bits 0–6: where the stream is cut in two writes, as a fraction (0…127/127) of its
///   length, so frames arrive split anywhere, prefix included.
///
/// Then the channel is closed (`finish`), which runs `decodeLast` on whatever is left.
/// Errors are the expected outcome for most inputs; a trap, a sanitizer report, a leak or
/// a hang is a finding.
@main
enum FrameDecoderFuzz {
    static func main() {
        Fuzzer.main(seeds: seeds, testOneInput: { data, count in
            FrameDecoderFuzz.run(Fuzzer.bytes(data, count))
            return 0
        })
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        guard let control = input.first else { return }
        let stream = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        let coordinator = control & 0x80 != 0
        let split = stream.count * Int(control & 0x7F) / 127

        let channel = EmbeddedChannel()
        let limit: FrameSizeLimit
        do {
            if coordinator {
                limit = FrameSizeLimit(WireLimits.unauthenticatedFrameSize)
                try GantryFraming.addHandlers(
                    to: channel.pipeline.syncOperations, limit: limit, maximumFrameSize: WireLimits.agentFrameSize)
            } else {
                limit = FrameSizeLimit(GantryFraming.defaultMaximumFrameSize)
                try GantryFraming.addHandlers(to: channel.pipeline.syncOperations)
            }
        } catch {
            Fuzzer.fail("cannot install the handlers: \(error)")
        }

        var envelopes = 0
        func drain() throws {
            while let envelope = try channel.readInbound(as: Gantry_V1_Envelope.self) {
                // The decoder promises callers only ever see messages they can act on.
                guard envelope.body != nil else { Fuzzer.fail("an envelope without a body reached the channel") }
                try MessageValidation.validate(envelope, authenticated: envelopes > 0)
                if coordinator, envelopes == 0 { limit.set(WireLimits.agentFrameSize) }
                envelopes += 1
            }
        }

        var stopped = false
        for part in [stream[..<split], stream[split...]] where !stopped && !part.isEmpty {
            do {
                try channel.writeInbound(channel.allocator.buffer(bytes: UnsafeRawBufferPointer(rebasing: part)))
                try drain()
            } catch {
                // The connection would be closed here with an error frame.
                stopped = true
            }
        }
        do {
            _ = try channel.finish(acceptAlreadyClosed: true)
        } catch {
            // A truncated frame at EOF, or the error that stopped the stream.
        }
        if envelopes > stream.count / 4 { Fuzzer.fail("\(envelopes) envelopes out of \(stream.count) bytes") }
    }

    /// Each message kind framed alone (whole, and cut inside its length prefix), a session
    /// as an agent sends it in one stream, and the edge cases of the limit.
    static func seeds() throws -> [Seed] {
        let frames = try SampleMessages.frames()
        var seeds: [Seed] = []
        for (name, frame) in frames {
            seeds.append(Seed("\(name)", [0x80] + frame))
            seeds.append(Seed("\(name)-split", [0x01] + frame))
        }
        let byName = Dictionary(uniqueKeysWithValues: frames)
        let session = ["hello", "ready", "lease-ack", "job-started", "log-chunk", "heartbeat", "job-finished"]
            .flatMap { byName[$0]! }
        seeds.append(Seed("session", [0x80 | 40] + session))
        seeds.append(Seed("session-agent-config", [0x00 | 90] + session))
        // A length prefix just over the unauthenticated limit, and one over the maximum.
        seeds.append(Seed("over-unauthenticated-limit", [0x80, 0x00, 0x01, 0x00, 0x01, 0x0A, 0x00]))
        seeds.append(Seed("over-maximum", [0x00, 0x00, 0x80, 0x00, 0x01, 0x0A, 0x00]))
        // A frame that ends early, and an empty frame.
        seeds.append(Seed("truncated", [0x80] + byName["hello"]!.dropLast(3)))
        seeds.append(Seed("empty-frame", [0x80, 0, 0, 0, 0]))
        return seeds
    }
}

/// libFuzzer's entry point by its conventional name, for tools that link the target
/// without the `@main` above (libFuzzer's own `main`, other fuzzing engines).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FrameDecoderFuzz.run(Fuzzer.bytes(data, count))
    return 0
}
