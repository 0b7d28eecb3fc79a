import GantryProtocol
import NIOCore
import NIOPosix
import NIOSSL

/// Opens a TLS connection to the coordinator with the protocol's framing installed.
public enum AgentChannel {
    public typealias Connection = NIOAsyncChannel<Gantry_V1_Envelope, Gantry_V1_Envelope>

    public static func connect(
        to address: HostPort, tls: TLSConfiguration,
        customVerification: (@Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResult>) -> Void)? = nil,
        maximumFrameSize: Int = GantryFraming.defaultMaximumFrameSize,
        connectTimeout: TimeAmount = .seconds(10)
    ) async throws -> Connection {
        let context = try NIOSSLContext(configuration: tls)
        // Hostname verification needs a name, not an IP literal, in SNI; NIOSSL checks IP SANs itself.
        let serverHostname = Self.isIPAddress(address.host) ? nil : address.host
        return try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            // tcpOption, not socketOption: SOL_SOCKET with TCP_NODELAY's number (1) is
            // SO_DEBUG, which needs CAP_NET_ADMIN; it only "worked" for agents run as root.
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(connectTimeout)
            .connect(host: address.host, port: address.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler: NIOSSLClientHandler
                    if let customVerification {
                        handler = try NIOSSLClientHandler(
                            context: context, serverHostname: serverHostname, customVerificationCallback: customVerification)
                    } else {
                        handler = try NIOSSLClientHandler(context: context, serverHostname: serverHostname)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                    try GantryFraming.addHandlers(to: channel.pipeline.syncOperations, maximumFrameSize: maximumFrameSize)
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
