import NIOCore
import SwiftProtobuf

/// Turns frames into `Envelope`s and back.
///
/// Decoding rejects an envelope with no body (a message kind this build does not know,
/// since protobuf keeps unknown `oneof` cases as unknown fields) so callers only ever
/// see messages they can act on.
public final class EnvelopeDecoder: ChannelInboundHandler, Sendable {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Gantry_V1_Envelope

    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        do {
            context.fireChannelRead(Self.wrapInboundOut(try Self.decode(frame)))
        } catch {
            context.fireErrorCaught(error)
        }
    }

    /// Decodes one frame's payload, after `WireShape` has checked that decoding it
    /// cannot allocate more than `WireLimits.fieldsPerMessage` entries.
    public static func decode(_ frame: ByteBuffer) throws -> Gantry_V1_Envelope {
        let envelope: Gantry_V1_Envelope
        do {
            try frame.withUnsafeReadableBytes { bytes throws(ProtocolError) in
                try WireShape.check(bytes, maximumFields: WireLimits.fieldsPerMessage)
            }
            envelope = try Gantry_V1_Envelope(serializedBytes: [UInt8](frame.readableBytesView))
        } catch let error as ProtocolError {
            throw error
        } catch {
            throw ProtocolError.malformed("\(error)")
        }
        guard envelope.body != nil else { throw ProtocolError.unknownMessage }
        return envelope
    }
}

/// Serializes outbound `Envelope`s; `LengthFieldPrepender` adds the length prefix after it.
public final class EnvelopeEncoder: ChannelOutboundHandler, Sendable {
    public typealias OutboundIn = Gantry_V1_Envelope
    public typealias OutboundOut = ByteBuffer

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let envelope = Self.unwrapOutboundIn(data)
        do {
            let bytes: [UInt8] = try envelope.serializedBytes()
            var buffer = context.channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            context.write(Self.wrapOutboundOut(buffer), promise: promise)
        } catch {
            promise?.fail(error)
        }
    }

    /// Encodes one envelope as a complete frame (length prefix included). Used by tests
    /// and tools that speak the protocol without a channel pipeline.
    public static func frame(_ envelope: Gantry_V1_Envelope) throws -> ByteBuffer {
        let bytes: [UInt8] = try envelope.serializedBytes()
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(bytes.count), endianness: .big)
        buffer.writeBytes(bytes)
        return buffer
    }
}
