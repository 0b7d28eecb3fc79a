import Foundation
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
/// Everything that can be decided about a connection without the core is decided here, on
/// the connection's own task: admission against `ConnectionLimits` (before TLS allocates
/// anything), the handshake and first-frame deadlines, the small frame limit until the
/// peer is accepted, range checks of every message (`MessageValidation`) and the inflate
/// check of log chunks, and the trust checks that read the store: enrollment, the `Hello`'s
/// revocation and label check (`HelloAdmission`) and certificate renewal. So a hostile
/// peer costs the single writer nothing, and a
/// protocol error (oversized, malformed or out-of-range frame, wrong version, unexpected
/// message) is answered with an `Error` frame and closes that connection only.
public final class AgentListener: Service, Sendable {
    public struct Limits: Sendable {
        /// Largest frame from an accepted agent (the anonymous limit is
        /// `WireLimits.unauthenticatedFrameSize`).
        public var maximumFrameSize: Int
        public var connections: ConnectionLimits.Configuration
        /// TLS handshake, then the first whole frame: an anonymous peer holds a
        /// connection for at most their sum.
        public var handshakeTimeout: TimeAmount
        public var firstFrameTimeout: TimeAmount
        /// Frames queued for an agent that is not reading before it is disconnected.
        public var maximumQueuedFrames: Int

        public init(
            maximumFrameSize: Int = WireLimits.agentFrameSize, connections: ConnectionLimits.Configuration = .init(),
            handshakeTimeout: TimeAmount = .seconds(5), firstFrameTimeout: TimeAmount = .seconds(5),
            maximumQueuedFrames: Int = AgentSession.defaultMaximumQueuedFrames
        ) {
            self.maximumFrameSize = maximumFrameSize
            self.connections = connections
            self.handshakeTimeout = handshakeTimeout
            self.firstFrameTimeout = firstFrameTimeout
            self.maximumQueuedFrames = maximumQueuedFrames
        }
    }

    /// What the initializer hands `serve` about one admitted connection.
    struct Accepted: Sendable {
        let channel: NIOAsyncChannel<Gantry_V1_Envelope, Gantry_V1_Envelope>
        let frameLimit: FrameSizeLimit
        /// Its record in `ConnectionLimits`.
        let id: ConnectionLimits.ConnectionID
    }

    public let host: String
    public let port: Int
    let core: CoordinatorCore
    let enrollment: Enrollment
    let admission: HelloAdmission
    let renewal: CertificateRenewal
    /// Catches a `Hello` that passed its trust check just before its host was forgotten.
    let revocation: AgentRevocation?
    /// Records enrollments and renewals (an agent host joining, or getting a certificate,
    /// is a state change someone must answer for).
    let audit: AuditLog?
    let tlsContext: NIOSSLContext
    let limits: Limits
    let logger: Logger
    let onBound: @Sendable (SocketAddress) -> Void
    let openChannels = Mutex<[ObjectIdentifier: any Channel]>([:])
    /// The admission counts and, for eviction, the channel of every admitted connection.
    let connectionLimits: Mutex<(limits: ConnectionLimits, channels: [ConnectionLimits.ConnectionID: any Channel])>
    /// Refusals since the last log line about them: a flood is logged once a second, not
    /// once per connection.
    let refusals = Mutex<(count: Int, lastLogged: ContinuousClock.Instant?)>((0, nil))

    public init(
        host: String, port: Int, core: CoordinatorCore, enrollment: Enrollment, admission: HelloAdmission,
        renewal: CertificateRenewal, revocation: AgentRevocation?, tls: TLSConfiguration, limits: Limits = Limits(),
        logger: Logger, audit: AuditLog? = nil, onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) throws {
        self.audit = audit
        self.host = host
        self.port = port
        self.core = core
        self.enrollment = enrollment
        self.admission = admission
        self.renewal = renewal
        self.revocation = revocation
        self.tlsContext = try NIOSSLContext(configuration: tls)
        self.limits = limits
        self.connectionLimits = Mutex((ConnectionLimits(configuration: limits.connections), [:]))
        self.logger = logger
        self.onBound = onBound
    }

    /// Current connection counts (for tests and metrics).
    public var connectionCounts: (total: Int, unauthenticated: Int) {
        connectionLimits.withLock { ($0.limits.connections, $0.limits.unauthenticatedConnections) }
    }

    public func run() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try self.initialize(channel) }
            }
        if let address = server.channel.localAddress { onBound(address) }
        logger.info("listening for agents", metadata: ["address": "\(server.channel.localAddress.map { "\($0)" } ?? "?")"])
        try await withGracefulShutdownHandler {
            try await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await accepted in connections {
                        guard let accepted else { continue }
                        group.addTask { await self.serve(accepted) }
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

    /// Admits the connection or closes it at once; builds its pipeline. Runs on the
    /// channel's event loop, before TLS has read a byte.
    private func initialize(_ channel: any Channel) throws -> Accepted? {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let (admission, evicted): (ConnectionLimits.Admission, (any Channel)?) = connectionLimits.withLock { state in
            let admission = state.limits.admit(address: address)
            guard case .admitted(let id, let evicting) = admission else { return (admission, nil) }
            state.channels[id] = channel
            return (admission, evicting.flatMap { state.channels.removeValue(forKey: $0) })
        }
        guard case .admitted(let id, _) = admission else {
            if case .refused(let why) = admission { noteRefusal(why) }
            channel.close(promise: nil)
            return nil
        }
        if let evicted {
            noteRefusal("evicted the oldest connection still in its handshake to admit a new one")
            evicted.close(promise: nil)
        }
        channel.closeFuture.whenComplete { _ in
            self.connectionLimits.withLock { state in
                state.limits.closed(id)
                state.channels.removeValue(forKey: id)
            }
        }
        let frameLimit = FrameSizeLimit(WireLimits.unauthenticatedFrameSize)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(NIOSSLServerHandler(context: tlsContext))
        try GantryFraming.addHandlers(to: sync, limit: frameLimit, maximumFrameSize: limits.maximumFrameSize)
        try sync.addHandler(
            HandshakeDeadlineHandler(handshakeTimeout: limits.handshakeTimeout, firstFrameTimeout: limits.firstFrameTimeout))
        // A small inbound buffer: while the core is busy, a connection holds a few decoded
        // frames, not the default dozens of up to 2 MiB each.
        let wrapped = try NIOAsyncChannel<Gantry_V1_Envelope, Gantry_V1_Envelope>(
            wrappingChannelSynchronously: channel,
            configuration: .init(backPressureStrategy: .init(lowWatermark: 2, highWatermark: 4)))
        return Accepted(channel: wrapped, frameLimit: frameLimit, id: id)
    }

    private func noteRefusal(_ why: String) {
        let now = ContinuousClock.now
        let report: Int? = refusals.withLock { state in
            state.count += 1
            if let last = state.lastLogged, now - last < .seconds(1) { return nil }
            state.lastLogged = now
            defer { state.count = 0 }
            return state.count
        }
        if let report {
            logger.warning("refusing agent connections", metadata: ["reason": "\(why)", "refused": "\(report)"])
        }
    }

    private func serve(_ accepted: Accepted) async {
        let connection = accepted.channel
        let channel = connection.channel
        let key = ObjectIdentifier(channel)
        openChannels.withLock { $0[key] = channel }
        defer {
            openChannels.withLock { _ = $0.removeValue(forKey: key) }
        }
        let remote = channel.remoteAddress.map { "\($0)" } ?? "?"
        var logger = self.logger
        logger[metadataKey: "peer"] = "\(remote)"
        var session: AgentSession?
        do {
            try await connection.executeThenClose { inbound, outbound in
                var gate: ConnectionGate?
                var peer: PeerCertificate?
                var lastRenewal: ContinuousClock.Instant?
                var repeatedRenewals = 0
                var inflateBudget = InflateBudget()
                // Created with the first chunk: most connections (scalers, idle agents) never need one.
                var inflater: LogChunkInflater?
                var writer: Task<Void, Never>?
                defer { writer?.cancel() }
                do {
                    for try await envelope in inbound {
                        if gate == nil {
                            // The TLS handshake is complete once the first frame is readable.
                            let certificate = try? await channel.nioSSL_peerCertificate().get()
                            peer = certificate.flatMap { PeerCertificate($0) }
                            gate = ConnectionGate(certificateName: peer?.name)
                        }
                        try MessageValidation.validate(envelope, authenticated: session != nil)
                        switch gate!.received(envelope) {
                        case .ignore:
                            continue
                        case .reject(let code, let message):
                            logger.notice("refused agent connection", metadata: ["reason": "\(message)"])
                            try await outbound.write(.error(code, message, fatal: true))
                            return
                        case .enroll(let request):
                            try await outbound.write(enroll(request, address: channel.remoteAddress?.ipAddress, logger: logger))
                            return
                        case .hello(let hello, let certificateName):
                            // Revocation and labels, from the store, before the core hears of
                            // it (the gate only passes a Hello from a verified certificate).
                            let checkedAt = ContinuousClock.now
                            guard let peer else { return }
                            if let refusal = admission.refusal(for: hello, peer: peer) {
                                logger.notice(
                                    "refused agent handshake",
                                    metadata: ["agent": "\(hello.agentID.logSafe())", "reason": "\(refusal.message.logSafe())"])
                                try await outbound.write(.error(refusal.code, refusal.message, fatal: true))
                                return
                            }
                            let newSession = AgentSession(
                                agentID: hello.agentID, maximumQueuedFrames: limits.maximumQueuedFrames,
                                onOverflow: { [logger] in
                                    logger.warning(
                                        "disconnecting an agent that does not read what it is sent",
                                        metadata: ["agent": "\(hello.agentID.logSafe())"])
                                    channel.close(promise: nil)
                                })
                            switch await core.hello(hello, certificateName: certificateName, session: newSession) {
                            case .failure(.refused(let code, let message)):
                                logger.notice("refused agent handshake", metadata: ["reason": "\(message.logSafe())"])
                                try await outbound.write(.error(code, message, fatal: true))
                                return
                            case .success(let welcome):
                                if let revocation, revocation.wasForgotten(host: certificateName, since: checkedAt) {
                                    await core.disconnected(agentID: hello.agentID, session: newSession)
                                    let refusal = TrustPolicy.revocation(
                                        host: certificateName, enrollment: nil, hostRevokedAt: Date())
                                    try await outbound.write(
                                        .error(.certificateRevoked, refusal?.message ?? "this host was forgotten", fatal: true))
                                    return
                                }
                                gate!.accepted(agentID: hello.agentID)
                                for resumed in welcome.resume where !resumed.abort {
                                    newSession.adopt(jobID: resumed.jobID, attempt: resumed.attempt)
                                }
                                session = newSession
                                accepted.frameLimit.set(limits.maximumFrameSize)
                                // Idempotent per connection: a close racing this changes nothing.
                                connectionLimits.withLock { $0.limits.authenticated(accepted.id) }
                                try await outbound.write(.with { $0.welcome = welcome })
                                writer = Task {
                                    for await frame in newSession.outbound {
                                        newSession.dequeued()
                                        do { try await outbound.write(frame) } catch { break }
                                    }
                                    channel.close(promise: nil)
                                }
                            }
                        case .renew(let request, let agentID):
                            guard let session, let peer else { continue }
                            let now = ContinuousClock.now
                            let result: Result<CertificateRenewal.Renewed, CertificateRenewal.Refusal>
                            if let lastRenewal, now - lastRenewal < CertificateRenewal.minimumInterval {
                                // An agent never asks twice in a minute: a peer that keeps
                                // asking is closed, so it cannot fill the audit log.
                                repeatedRenewals += 1
                                if repeatedRenewals > Self.maximumRepeatedRenewals {
                                    throw ProtocolError.unexpectedMessage(
                                        "renewal asked more than \(Self.maximumRepeatedRenewals + 1) times within "
                                            + "\(CertificateRenewal.minimumInterval) on one connection")
                                }
                                result = .failure(.askedAgainOnConnection)
                            } else {
                                lastRenewal = now
                                repeatedRenewals = 0
                                result = renewal.renew(request, peer: peer, instant: now)
                            }
                            recordRenewal(result, peer: peer, agentID: agentID, address: channel.remoteAddress?.ipAddress, logger: logger)
                            session.send(.with { $0.renewResponse = CertificateRenewal.response(result) })
                        case .forward(let envelope, let agentID):
                            guard let session else { continue }
                            if case .logChunk(let chunk) = envelope.body {
                                // Only chunks of attempts this connection holds are inflated,
                                // here on its own task and within its budget: a corrupt or
                                // foreign chunk costs the single writer nothing.
                                guard session.holds(jobID: chunk.jobID, attempt: chunk.attempt) else {
                                    session.send(
                                        .error(
                                            .staleAttempt, "attempt \(chunk.attempt) of job \(chunk.jobID) is not yours: stop it",
                                            jobID: chunk.jobID, attempt: chunk.attempt, fatal: false))
                                    continue
                                }
                                let wait = inflateBudget.spend(Int(chunk.rawLength))
                                if wait > .zero { try await Task.sleep(for: wait) }
                                if inflater == nil { inflater = try LogChunkInflater() }
                                if let problem = LogChunkCheck.problem(with: chunk, inflater: inflater!) {
                                    session.send(
                                        .error(.malformed, problem, jobID: chunk.jobID, attempt: chunk.attempt, fatal: false))
                                    continue
                                }
                            }
                            await core.receive(envelope, from: agentID, session: session)
                        }
                    }
                } catch let error as ProtocolError {
                    logger.notice(
                        "closing agent connection on a protocol error", metadata: ["error": "\(error.description.logSafe())"])
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

    /// Refused renewal requests one connection may repeat within
    /// `CertificateRenewal.minimumInterval` before it is closed.
    static let maximumRepeatedRenewals = 2

    /// Logs and audits one renewal answer: `agent.renew` by and on the host, with the old
    /// serial, the new one or the reason it was refused. Every answer is recorded: a host
    /// renewing when it is not due, or more often than its agents would, is what someone
    /// holding its key looks like.
    private func recordRenewal(
        _ result: Result<CertificateRenewal.Renewed, CertificateRenewal.Refusal>, peer: PeerCertificate, agentID: String,
        address: String?, logger: Logger
    ) {
        let host = peer.name.logSafe(maximum: 253)
        switch result {
        case .success(let renewed):
            logger.info("renewed an agent certificate", metadata: ["agent": "\(agentID.logSafe())", "serial": "\(renewed.serial)"])
            audit?.record(
                AuditEvent(
                    actor: "agent:\(host)", tokenID: nil, address: address, action: "agent.renew", object: "host:\(host)",
                    outcome: "succeeded", detail: ["old_serial": peer.serial, "new_serial": renewed.serial]))
        case .failure(let refusal):
            logger.notice(
                "refused a certificate renewal",
                metadata: ["agent": "\(agentID.logSafe())", "reason": "\(refusal.description.logSafe())"])
            audit?.record(
                AuditEvent(
                    actor: "agent:\(host)", tokenID: nil, address: address, action: "agent.renew", object: "host:\(host)",
                    outcome: "refused",
                    detail: ["old_serial": peer.serial, "reason": refusal.reason, "message": refusal.description.logSafe(maximum: 200)]))
        }
    }

    private func enroll(_ request: Gantry_V1_EnrollRequest, address: String?, logger: Logger) -> Gantry_V1_Envelope {
        let result = enrollment.enroll(request)
        // Audited: a host joining, and a known join token refused (expired, used up,
        // revoked). A wrong token is only logged: anyone can send one, and the audit log
        // must not be a disk an anonymous peer can fill.
        let tokenID = JoinToken.id(inSecret: request.token) ?? "join.token"
        let host = "agent:" + request.agentID.logSafe(maximum: 253)
        switch result {
        case .success:
            audit?.record(
                AuditEvent(actor: "join-token:\(tokenID)", tokenID: tokenID, address: address, action: "agent.enroll", object: host, outcome: "succeeded"))
        case .failure(.unusableToken(let why)):
            audit?.record(
                AuditEvent(
                    actor: "join-token:\(tokenID)", tokenID: tokenID, address: address, action: "agent.enroll", object: host,
                    outcome: "refused", detail: ["reason": why.logSafe(maximum: 200)]))
        case .failure(.nameRefused(let refusal)):
            // The right token for the wrong name: someone trying to take a host's place,
            // or an operator who needs a token bound to it.
            audit?.record(
                AuditEvent(
                    actor: "join-token:\(tokenID)", tokenID: tokenID, address: address, action: "agent.enroll", object: host,
                    outcome: "refused", detail: ["reason": refusal.description.logSafe(maximum: 200)]))
        default:
            break
        }
        switch result {
        case .success(let response):
            logger.info("enrolled agent", metadata: ["agent": "\(request.agentID.logSafe())"])
            return .with { $0.enrollResponse = response }
        case .failure(.badToken):
            logger.warning("refused enrollment: wrong join token", metadata: ["agent": "\(request.agentID.logSafe())"])
            return .error(
                .badToken,
                "the join token is wrong: get one with `gantry-coordinator join-token create` (or `join-info`) on the coordinator",
                fatal: true)
        case .failure(.unusableToken(let why)):
            logger.warning(
                "refused enrollment", metadata: ["agent": "\(request.agentID.logSafe())", "reason": "\(why.logSafe())"])
            return .error(
                .badToken, "\(why): create a new one with `gantry-coordinator join-token create`", fatal: true)
        case .failure(.nameRefused(let refusal)):
            logger.warning(
                "refused enrollment", metadata: ["agent": "\(request.agentID.logSafe())", "reason": "\(refusal.description.logSafe())"])
            return .error(.badToken, refusal.description, fatal: true)
        case .failure(.badRequest(let why)):
            return .error(.malformed, "enrollment refused: \(why)", fatal: true)
        case .failure(.storeFailed(let why)):
            logger.error("enrollment could not be recorded", metadata: ["error": "\(why.logSafe())"])
            return .error(.internal, "the coordinator could not record the enrollment: try again", fatal: true)
        }
    }
}
