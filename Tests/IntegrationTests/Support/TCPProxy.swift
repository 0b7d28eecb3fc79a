import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A TCP proxy on 127.0.0.1 that a test controls, to cut the network between an agent and
/// the coordinator: `cut()` drops every proxied connection and refuses new ones until
/// `restore()`. Bytes are forwarded untouched (the TLS session is end to end).
final class TCPProxy: Sendable {
    let targetHost: String
    let targetPort: Int
    private let state = Mutex<State>(State())
    private struct State {
        var server: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var cut = false
    }

    init(target: String) {
        let parts = target.split(separator: ":")
        targetHost = String(parts[0])
        targetPort = Int(parts[1])!
    }

    /// Starts listening; returns the proxy's address (`127.0.0.1:PORT`).
    func start() async throws -> String {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                self.accept(inbound)
                return inbound.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        state.withLock { $0.server = server }
        return "127.0.0.1:\(server.localAddress!.port!)"
    }

    private func accept(_ inbound: any Channel) {
        if state.withLock({ $0.cut }) {
            inbound.close(promise: nil)
            return
        }
        ClientBootstrap(group: inbound.eventLoop)
            .channelOption(.autoRead, value: false)
            .connect(host: targetHost, port: targetPort)
            .whenComplete { result in
                switch result {
                case .failure(let error):
                    FileHandle.standardError.write(Data("TCPProxy: connect to \(self.targetHost):\(self.targetPort) failed: \(error)\n".utf8))
                    inbound.close(promise: nil)
                case .success(let outbound):
                    let refused = self.state.withLock { state -> Bool in
                        if state.cut { return true }
                        state.connections[ObjectIdentifier(inbound)] = inbound
                        state.connections[ObjectIdentifier(outbound)] = outbound
                        return false
                    }
                    if refused {
                        inbound.close(promise: nil)
                        outbound.close(promise: nil)
                        return
                    }
                    _ = inbound.pipeline.addHandler(Forwarder(partner: outbound))
                    _ = outbound.pipeline.addHandler(Forwarder(partner: inbound))
                    inbound.setOption(.autoRead, value: true).whenComplete { _ in inbound.read() }
                    outbound.setOption(.autoRead, value: true).whenComplete { _ in outbound.read() }
                    for channel in [inbound, outbound] {
                        channel.closeFuture.whenComplete { _ in
                            _ = self.state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
                        }
                    }
                }
            }
    }

    /// Drops every connection (like a network partition) and refuses new ones.
    func cut() {
        let open = state.withLock { state -> [any Channel] in
            state.cut = true
            return Array(state.connections.values)
        }
        for channel in open { channel.close(mode: .all, promise: nil) }
    }

    func restore() {
        state.withLock { $0.cut = false }
    }

    func stop() {
        cut()
        state.withLock { $0.server }?.close(promise: nil)
    }
}

/// Copies everything it reads to its partner; closing one side closes the other.
private final class Forwarder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let partner: any Channel

    init(partner: any Channel) {
        self.partner = partner
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner.writeAndFlush(Self.unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
