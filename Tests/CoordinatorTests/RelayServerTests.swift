import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The standby's relay with real sockets on 127.0.0.1: bytes pass unchanged both ways,
/// a change of leader closes what was relayed, and no leader means no connection.
@Suite("Relay server", .timeLimit(.minutes(1)))
struct RelayServerTests {
    /// A TCP server that answers every read with the same bytes.
    static func echoServer() async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Echo()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    final class Echo: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }
    }

    /// Connects to `port`, sends `payload`, and reads until as many bytes came back or
    /// the connection closed.
    static func roundTrip(port: Int, _ payload: [UInt8]) async throws -> [UInt8] {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: payload))
            var received: [UInt8] = []
            for try await buffer in inbound {
                received += buffer.readableBytesView
                if received.count >= payload.count { break }
            }
            return received
        }
    }

    @Test func bytesPassUnchangedAndALargePayloadArrivesWhole() async throws {
        let echo = try await Self.echoServer()
        let target = HostPort(host: "127.0.0.1", port: echo.localAddress!.port!)
        let relay = RelayServer(name: "test", target: { target }, logger: Logger(label: "relay"))
        let bound = try await relay.start(host: "127.0.0.1", port: 0)
        // 4 MiB: far more than a socket buffer, so the relay's reads wait for writability.
        let payload = (0..<(4 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let back = try await Self.roundTrip(port: bound.port!, payload)
        #expect(back == payload)
        await relay.stop()
        try await echo.close()
    }

    @Test func closeAllEndsRelayedConnectionsAndNoLeaderRefusesNewOnes() async throws {
        let echo = try await Self.echoServer()
        let target = Mutex<HostPort?>(HostPort(host: "127.0.0.1", port: echo.localAddress!.port!))
        let relay = RelayServer(name: "test", target: { target.withLock { $0 } }, logger: Logger(label: "relay"))
        let bound = try await relay.start(host: "127.0.0.1", port: 0)
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: bound.port!).get()
        try await waitUntil { relay.relayedConnections == 1 }
        relay.closeAll()
        try await client.closeFuture.get()
        // With no leader known, a connection is accepted and closed at once.
        target.withLock { $0 = nil }
        let refused = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: bound.port!).get()
        try await refused.closeFuture.get()
        await relay.stop()
        try await echo.close()
    }

    func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
