import NIOCore
import NIOExtras

/// Splits the inbound byte stream into frames: a 4-byte big-endian length, then the payload.
///
/// NIOExtras' `LengthFieldBasedFrameDecoder` does the framing. It would happily wait for
/// (and buffer) a frame of any announced size, so this wrapper reads the length prefix the
/// moment it arrives and fails the connection before a single payload byte is buffered when
/// the length exceeds `maximumFrameSize`. `GantryFraming` also caps the handler's buffer,
/// so the limit holds even if this check were bypassed.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    /// The largest frame accepted now; it may be raised after the handshake.
    public let limit: FrameSizeLimit
    public var maximumFrameSize: Int { limit.current }
    private var inner = LengthFieldBasedFrameDecoder(lengthFieldBitLength: .fourBytes, lengthFieldEndianness: .big)
    /// The inner decoder has consumed a length prefix and is waiting for that payload; the
    /// bytes at the reader index are payload, not a prefix to check.
    private var awaitingPayload = false

    public init(maximumFrameSize: Int) {
        self.limit = FrameSizeLimit(maximumFrameSize)
    }

    public init(limit: FrameSizeLimit) {
        self.limit = limit
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if !awaitingPayload, let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self),
            Int(length) > limit.current
        {
            throw ProtocolError.frameTooLarge(length: length, maximum: limit.current)
        }
        let before = buffer.readerIndex
        let state = try self.inner.decode(context: context, buffer: &buffer)
        if state == .continue {
            awaitingPayload = false
        } else if buffer.readerIndex > before {
            awaitingPayload = true
        }
        return state
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        let state = try self.decode(context: context, buffer: &buffer)
        if state == .needMoreData, buffer.readableBytes > 0 {
            let bytes = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: bytes)
            throw ProtocolError.truncatedFrame(bufferedBytes: bytes)
        }
        return state
    }
}
