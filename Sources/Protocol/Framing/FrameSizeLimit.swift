import Synchronization

/// The largest frame a connection accepts now, shared between the frame decoder and the
/// code that authenticates the peer.
///
/// A connection starts at `WireLimits.unauthenticatedFrameSize` so an anonymous peer can
/// make the receiver buffer and decode only a few KiB; once the handshake has accepted
/// the peer, the listener raises it to the full frame size. Atomic because the decoder
/// runs on the channel's event loop and the handshake completes on another task.
public final class FrameSizeLimit: Sendable {
    private let value: Atomic<Int>

    public init(_ maximum: Int) {
        self.value = Atomic(maximum)
    }

    public var current: Int { value.load(ordering: .relaxed) }

    public func set(_ maximum: Int) {
        value.store(maximum, ordering: .relaxed)
    }
}
