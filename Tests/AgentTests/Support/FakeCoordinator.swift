import Crypto
@testable import GantryAgent
import GantryProtocol
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import X509

/// A coordinator on 127.0.0.1 that speaks just enough of the protocol for the agent's
/// tests: `Welcome` for `Hello`, `leases` for the first `Ready`, a `LogAck` for every
/// chunk, a `FinishAck` for every `JobFinished`. Records every frame the agent sends.
final class FakeCoordinator: ChannelInboundHandler, Sendable {
    typealias InboundIn = Gantry_V1_Envelope
    typealias OutboundOut = Gantry_V1_Envelope

    let leases: [Gantry_V1_Lease]
    private let received = Mutex<[Gantry_V1_Envelope]>([])
    private let leased = Mutex(false)

    init(leases: [Gantry_V1_Lease]) {
        self.leases = leases
    }

    var all: [Gantry_V1_Envelope] { received.withLock { $0 } }

    var finished: [Gantry_V1_JobFinished] {
        all.compactMap { if case .jobFinished(let finished) = $0.body { return finished } else { return nil } }
    }

    func sent(_ matches: (Gantry_V1_Envelope.OneOf_Body) -> Bool) -> Bool {
        all.contains { $0.body.map(matches) ?? false }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        received.withLock { $0.append(envelope) }
        switch envelope.body {
        case .hello:
            context.writeAndFlush(
                wrapOutboundOut(
                    .with {
                        $0.welcome = .with {
                            $0.version = ProtocolVersion.current
                            $0.heartbeatIntervalMs = 500
                            $0.leaseTtlMs = 5000
                        }
                    }), promise: nil)
        case .ready:
            guard leased.withLock({ done in defer { done = true }; return !done }) else { return }
            for lease in leases { context.write(wrapOutboundOut(.with { $0.lease = lease }), promise: nil) }
            context.flush()
        case .logChunk(let chunk):
            context.writeAndFlush(
                wrapOutboundOut(
                    .with {
                        $0.logAck = .with {
                            $0.jobID = chunk.jobID
                            $0.attempt = chunk.attempt
                            $0.offset = chunk.offset + UInt64(chunk.rawLength)
                        }
                    }), promise: nil)
        case .jobFinished(let finished):
            context.writeAndFlush(
                wrapOutboundOut(
                    .with {
                        $0.finishAck = .with {
                            $0.jobID = finished.jobID
                            $0.attempt = finished.attempt
                        }
                    }), promise: nil)
        case .heartbeat:
            context.writeAndFlush(wrapOutboundOut(.with { $0.heartbeatAck = .init() }), promise: nil)
        default:
            break
        }
    }

    /// Listens on 127.0.0.1 with a fresh CA; returns the listener and the TLS settings of an
    /// agent enrolled as `h`.
    func listen() async throws -> (server: Channel, agentTLS: TLSConfiguration) {
        let ca = try CertificateAuthority.create()
        let (serverCertificate, serverKey) = try ca.issueServerCertificate(commonName: "c", dnsNames: [], ipAddresses: ["127.0.0.1"])
        let agentKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let agentCertificate = try ca.signAgentCSR(try AgentCSR.make(agentID: "h", key: agentKey), agentID: "h")
        let context = try NIOSSLContext(
            configuration: try GantryTLS.server(
                certificateChain: [serverCertificate, ca.certificate], privateKey: serverKey, ca: ca.certificate))
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try GantryFraming.addHandlers(to: channel.pipeline.syncOperations)
                    try channel.pipeline.syncOperations.addHandler(self)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return (server, try GantryTLS.agent(certificate: agentCertificate, privateKey: agentKey, ca: ca.certificate))
    }
}
