import GantryProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// Accepts agent connections (TLS 1.3, mutual), runs each through the `ConnectionGate`, and
/// hands authenticated traffic to the `CoordinatorCore`.
///
/// A protocol error (oversized or malformed frame, wrong version, unexpected message) is
/// answered with an `Error` frame and closes that connection only.
public final class AgentListener: Service, Sendable {
    public let host: String
    public let port: Int
    let core: CoordinatorCore
    let enrollment: Enrollment
    let tlsContext: NIOSSLContext
    let maximumFrameSize: Int
    let logger: Logger
    let onBound: @Sendable (SocketAddress) -> Void
    let openChannels = Mutex<[ObjectIdentifier: any Channel]>([:])

    public init(
        host: String, port: Int, core: CoordinatorCore, enrollment: Enrollment, tls: TLSConfiguration,
        maximumFrameSize: Int = GantryFraming.defaultMaximumFrameSize, logger: Logger,
        onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) throws {
        self.host = host
        self.port = port
        self.core = core
        self.enrollment = enrollment
        self.tlsContext = try NIOSSLContext(configuration: tls)
        self.maximumFrameSize = maximumFrameSize
        self.logger = logger
        self.onBound = onBound
    }

    public func run() async throws {
        let tlsContext = self.tlsContext
        let maximumFrameSize = self.maximumFrameSize
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext))
                    try GantryFraming.addHandlers(to: channel.pipeline.syncOperations, maximumFrameSize: maximumFrameSize)
                    return try NIOAsyncChannel<Gantry_V1_Envelope, Gantry_V1_Envelope>(
                        wrappingChannelSynchronously: channel)
                }
            }
        if let address = server.channel.localAddress { onBound(address) }
        logger.info("listening for agents", metadata: ["address": "\(server.channel.localAddress.map { "\($0)" } ?? "?")"])
        try await withGracefulShutdownHandler {
            try await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            // Stop accepting, then close every agent connection: agents keep their jobs
            // running and reconnect (with backoff) to the next coordinator process.
            server.channel.close(promise: nil)
            for channel in self.openChannels.withLock({ Array($0.values) }) { channel.close(promise: nil) }
            Task { await self.core.shutdown() }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<Gantry_V1_Envelope, Gantry_V1_Envelope>) async {
        let channel = connection.channel
        let key = ObjectIdentifier(channel)
        openChannels.withLock { $0[key] = channel }
        defer { openChannels.withLock { _ = $0.removeValue(forKey: key) } }
        let remote = channel.remoteAddress.map { "\($0)" } ?? "?"
        var logger = self.logger
        logger[metadataKey: "peer"] = "\(remote)"
        var session: AgentSession?
        do {
            try await connection.executeThenClose { inbound, outbound in
                var gate: ConnectionGate?
                var writer: Task<Void, Never>?
                defer { writer?.cancel() }
                do {
                    for try await envelope in inbound {
                        if gate == nil {
                            // The TLS handshake is complete once the first frame is readable.
                            let certificate = try? await channel.nioSSL_peerCertificate().get()
                            gate = ConnectionGate(certificateName: certificate.flatMap(GantryTLS.commonName(of:)))
                        }
                        switch gate!.received(envelope) {
                        case .ignore:
                            continue
                        case .reject(let code, let message):
                            logger.notice("refused agent connection", metadata: ["reason": "\(message)"])
                            try await outbound.write(.error(code, message, fatal: true))
                            return
                        case .enroll(let request):
                            try await outbound.write(enroll(request, logger: logger))
                            return
                        case .hello(let hello, let certificateName):
                            let newSession = AgentSession(agentID: hello.agentID)
                            switch await core.hello(hello, certificateName: certificateName, session: newSession) {
                            case .failure(.refused(let code, let message)):
                                logger.notice("refused agent handshake", metadata: ["reason": "\(message)"])
                                try await outbound.write(.error(code, message, fatal: true))
                                return
                            case .success(let welcome):
                                gate!.accepted(agentID: hello.agentID)
                                session = newSession
                                try await outbound.write(.with { $0.welcome = welcome })
                                writer = Task {
                                    for await frame in newSession.outbound {
                                        do { try await outbound.write(frame) } catch { break }
                                    }
                                    channel.close(promise: nil)
                                }
                            }
                        case .forward(let envelope, let agentID):
                            await core.receive(envelope, from: agentID, session: session!)
                        }
                    }
                } catch let error as ProtocolError {
                    logger.notice("closing agent connection on a protocol error", metadata: ["error": "\(error)"])
                    try? await outbound.write(.error(error.code, error.description, fatal: true))
                } catch is ByteToMessageDecoderError.PayloadTooLargeError {
                    try? await outbound.write(.error(.frameTooLarge, "frame exceeds the maximum frame size", fatal: true))
                }
            }
        } catch {
            logger.debug("agent connection ended", metadata: ["error": "\(error)"])
        }
        // Whatever ended the connection (EOF, reset, TLS error, refusal), the core must
        // know, or a dead agent would keep being offered jobs until its TTL.
        if let session { await core.disconnected(agentID: session.agentID, session: session) }
    }

    private func enroll(_ request: Gantry_V1_EnrollRequest, logger: Logger) -> Gantry_V1_Envelope {
        switch enrollment.enroll(request) {
        case .success(let response):
            logger.info("enrolled agent", metadata: ["agent": "\(request.agentID)"])
            return .with { $0.enrollResponse = response }
        case .failure(.badToken):
            logger.warning("refused enrollment: wrong join token", metadata: ["agent": "\(request.agentID)"])
            return .error(
                .badToken, "the join token is wrong: get it with `gantry-coordinator join-info` on the coordinator",
                fatal: true)
        case .failure(.badRequest(let why)):
            return .error(.malformed, "enrollment refused: \(why)", fatal: true)
        }
    }
}
