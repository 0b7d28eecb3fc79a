import Foundation
import GantryProtocol
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A standby coordinator's ports: every connection accepted is relayed byte for byte to
/// the leader's same port, so agents and API clients may dial any coordinator.
///
/// It relays at TCP level on purpose: agent connections keep their mutual TLS end to end
/// with the leader (a standby sees only ciphertext and holds no session state), and a log
/// follow or a dashboard's event stream passes through unchanged. Reads on one side wait
/// for the other side to be writable, so a slow peer bounds the memory a relayed
/// connection holds. `closeAll()` drops every relayed connection when the leader changes,
/// and clients reconnect through the same port to the new one.
public final class RelayServer: Sendable {
    public struct Limits: Sendable {
        /// Relayed connections at once, past which new ones are closed at accept.
        public var maximumConnections = 20_000
        /// How long dialling the leader may take before the client's connection is closed.
        public var connectTimeout: TimeAmount = .seconds(5)

        public init() {}
    }

    let name: String
    let target: @Sendable () -> HostPort?
    let limits: Limits
    let logger: Logger
    private let state = Mutex<State>(State())

    private struct State {
        var server: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        /// Accepted connections whose dial to the leader has not finished: they count
        /// against the limit too, or a flood of them would start unbounded dials.
        var dialling = 0
        var stopped = false
    }

    /// `target`: the leader's address for this port now, read at each accept; nil refuses.
    public init(name: String, target: @escaping @Sendable () -> HostPort?, limits: Limits = Limits(), logger: Logger) {
        self.name = name
        self.target = target
        self.limits = limits
        self.logger = logger
    }

    /// Listens on `host:port`; returns the bound address.
    public func start(host: String, port: Int) async throws -> SocketAddress {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { [self] inbound in
                accept(inbound)
                return inbound.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: host, port: port).get()
        state.withLock { $0.server = server }
        return server.localAddress!
    }

    /// The number of connections being relayed (both sides count once).
    public var relayedConnections: Int { state.withLock { $0.connections.count } / 2 }

    private func accept(_ inbound: any Channel) {
        guard let target = target() else {
            inbound.close(promise: nil)
            return
        }
        let admitted = state.withLock { state -> Bool in
            guard !state.stopped, state.connections.count / 2 + state.dialling < limits.maximumConnections else { return false }
            state.dialling += 1
            return true
        }
        guard admitted else {
            inbound.close(promise: nil)
            return
        }
        let logger = self.logger
        let name = self.name
        ClientBootstrap(group: inbound.eventLoop)
            .connectTimeout(limits.connectTimeout)
            .channelOption(.autoRead, value: false)
            .connect(host: target.host, port: target.port)
            .whenComplete { [self] result in
                state.withLock { $0.dialling -= 1 }
                switch result {
                case .failure(let error):
                    logger.debug("cannot reach the leader; closing the relayed connection", metadata: ["port": "\(name)", "leader": "\(target)", "error": "\(error)"])
                    inbound.close(promise: nil)
                case .success(let outbound):
                    let refused = state.withLock { state -> Bool in
                        if state.stopped { return true }
                        state.connections[ObjectIdentifier(inbound)] = inbound
                        state.connections[ObjectIdentifier(outbound)] = outbound
                        return false
                    }
                    guard !refused else {
                        inbound.close(promise: nil)
                        outbound.close(promise: nil)
                        return
                    }
                    for channel in [inbound, outbound] {
                        channel.closeFuture.whenComplete { [self] _ in
                            _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
                        }
                    }
                    // Both channels are on `inbound`'s event loop: the handlers are glued
                    // synchronously there.
                    do {
                        let (left, right) = RelayHandler.pair()
                        try inbound.pipeline.syncOperations.addHandler(left)
                        try outbound.pipeline.syncOperations.addHandler(right)
                        // Reading starts now that both sides are glued; from here each
                        // read passes `RelayHandler.read`, which holds it while the
                        // partner cannot take more.
                        try inbound.syncOptions?.setOption(.autoRead, value: true)
                        try outbound.syncOptions?.setOption(.autoRead, value: true)
                    } catch {
                        inbound.close(promise: nil)
                        outbound.close(promise: nil)
                    }
                }
            }
    }

    /// Closes every relayed connection; the port stays open for new ones.
    public func closeAll() {
        let open = state.withLock { Array($0.connections.values) }
        for channel in open { channel.close(mode: .all, promise: nil) }
    }

    /// Stops listening and closes every relayed connection.
    public func stop() async {
        let (server, open) = state.withLock { state -> ((any Channel)?, [any Channel]) in
            state.stopped = true
            return (state.server, Array(state.connections.values))
        }
        for channel in open { channel.close(mode: .all, promise: nil) }
        try? await server?.close()
    }
}

/// One side of a relayed connection: what it reads goes to its partner, and it reads
/// again only while the partner can take more (a held read resumes when it can).
final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func pair() -> (RelayHandler, RelayHandler) {
        let left = RelayHandler()
        let right = RelayHandler()
        left.partner = right
        right.partner = left
        return (left, right)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.write(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.closePartner()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if partner?.context?.channel.isWritable ?? false {
            context.read()
        } else {
            pendingRead = true
        }
    }

    private func write(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func flush() { context?.flush() }
    private func closePartner() { context?.close(mode: .all, promise: nil) }

    private func partnerBecameWritable() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}
