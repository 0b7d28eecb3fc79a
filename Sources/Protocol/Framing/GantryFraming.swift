import NIOCore
import NIOExtras

/// Installs the protocol's framing and message codec on a channel (after TLS).
public enum GantryFraming {
    /// 8 MiB: agents cut log chunks at 256 KiB of raw output (less once deflated) and
    /// every other message is tiny, so this leaves ample room without letting a peer
    /// make the other side buffer much.
    public static let defaultMaximumFrameSize = 8 * 1024 * 1024

    /// Adds, in order: the size-capped frame decoder, the length prepender, and the
    /// envelope codec. Must be called on the channel's event loop.
    public static func addHandlers(
        to pipeline: ChannelPipeline.SynchronousOperations,
        maximumFrameSize: Int = defaultMaximumFrameSize
    ) throws {
        try addHandlers(to: pipeline, limit: FrameSizeLimit(maximumFrameSize), maximumFrameSize: maximumFrameSize)
    }

    /// As above, with a limit the caller can raise later (up to `maximumFrameSize`, which
    /// also caps the decoder's buffer): the coordinator starts each connection at
    /// `WireLimits.unauthenticatedFrameSize` and raises it once the peer is accepted.
    public static func addHandlers(
        to pipeline: ChannelPipeline.SynchronousOperations, limit: FrameSizeLimit, maximumFrameSize: Int
    ) throws {
        try pipeline.addHandler(
            ByteToMessageHandler(
                FrameDecoder(limit: limit),
                maximumBufferSize: maximumFrameSize + 4
            )
        )
        try pipeline.addHandler(LengthFieldPrepender(lengthFieldBitLength: .fourBytes, lengthFieldEndianness: .big))
        try pipeline.addHandler(EnvelopeDecoder())
        try pipeline.addHandler(EnvelopeEncoder())
    }
}
