import GantryProtocol
import NIOCore
import NIOSSL
import NIOTLS

/// Closes a connection whose peer does not finish the TLS handshake within
/// `handshakeTimeout`, or does not send a complete first frame within
/// `firstFrameTimeout` after it.
///
/// Sits after the envelope decoder, so "first frame" means a whole decoded message: a
/// peer that trickles a partial frame is still cut off. It removes itself once the first
/// message has passed; after that the lease TTL governs silence.
final class HandshakeDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Gantry_V1_Envelope
    typealias InboundOut = Gantry_V1_Envelope

    let handshakeTimeout: TimeAmount
    let firstFrameTimeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var done = false

    init(handshakeTimeout: TimeAmount, firstFrameTimeout: TimeAmount) {
        self.handshakeTimeout = handshakeTimeout
        self.firstFrameTimeout = firstFrameTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        arm(context: context, after: handshakeTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, !done {
            arm(context: context, after: firstFrameTimeout)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !done {
            done = true
            timer?.cancel()
            timer = nil
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

    private func arm(context: ChannelHandlerContext, after timeout: TimeAmount) {
        timer?.cancel()
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) {
            channel.close(promise: nil)
        }
    }
}
