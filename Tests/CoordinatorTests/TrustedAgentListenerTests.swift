import Crypto
import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import Testing
import X509

/// The agent listener's trust checks over real TLS on 127.0.0.1, in process: a `Hello`
/// claiming a label its enrollment does not allow is refused, a certificate is renewed on
/// a live connection (only when due, once per host per minute, audited), and a forget
/// closes that connection and refuses the next.
@Suite("Trusted agents over TLS", .serialized, .timeLimit(.minutes(2)))
final class TrustedAgentListenerTests {
    typealias Connection = NIOAsyncChannel<Gantry_V1_Envelope, Gantry_V1_Envelope>

    let directory = NSTemporaryDirectory() + "gantry-trust-listener-\(UUID().uuidString)"
    let ca: CertificateAuthority
    let store: SQLiteStore

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        ca = try CertificateAuthority.create()
        store = try SQLiteStore(path: directory + "/gantry.sqlite")
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Runs a listener on 127.0.0.1:0 for `body`, then cancels it.
    func withListener(_ body: (Int, CoordinatorCore, AgentRevocation) async throws -> Void) async throws {
        let core = try CoordinatorCore(
            store: store, configuration: .init(heartbeatInterval: .seconds(1)), logger: Logger(label: "test"))
        let (server, serverKey) = try ca.issueServerCertificate(commonName: "localhost", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
        let revocation = AgentRevocation(store: store, core: core)
        let port = Mutex<Int?>(nil)
        let listener = try AgentListener(
            host: "127.0.0.1", port: 0, core: core,
            enrollment: Enrollment(authority: ca, legacyJoinToken: "legacy", store: store),
            admission: HelloAdmission(store: store), renewal: CertificateRenewal(authority: ca, store: store, certificateValidity: 3600),
            revocation: revocation,
            tls: try GantryTLS.server(certificateChain: [server, ca.certificate], privateKey: serverKey, ca: ca.certificate),
            logger: Logger(label: "test"), audit: AuditLog(store: store, logger: Logger(label: "test")),
            onBound: { address in port.withLock { $0 = address.port } })
        let running = Task { try await listener.run() }
        defer { running.cancel() }
        let deadline = ContinuousClock.now + .seconds(30)
        while port.withLock({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        try await body(try #require(port.withLock { $0 }), core, revocation)
    }

    /// A certificate for `name` enrolled with `token` (the store records its labels), valid
    /// `validity` seconds (60: due for renewal at once, it is backdated five minutes).
    func enroll(
        _ name: String, token: String = "legacy", validity: TimeInterval = CertificateAuthority.defaultAgentCertificateValidity
    ) throws -> (Certificate, Certificate.PrivateKey) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let request = Gantry_V1_EnrollRequest.with {
            $0.token = token
            $0.agentID = name
            $0.csrDer = Data((try? AgentCSR.make(agentID: name, key: key)) ?? [])
        }
        let response = try Enrollment(authority: ca, legacyJoinToken: "legacy", store: store, certificateValidity: validity)
            .enroll(request).get()
        return (try Certificate(derEncoded: Array(response.certificateDer)), key)
    }

    func connect(_ port: Int, as identity: (Certificate, Certificate.PrivateKey)) async throws -> Connection {
        let context = try NIOSSLContext(configuration: try GantryTLS.agent(certificate: identity.0, privateKey: identity.1, ca: ca.certificate))
        return try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try GantryFraming.addHandlers(to: channel.pipeline.syncOperations)
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
    }

    static func hello(_ id: String, labels: [String: String] = [:]) -> Gantry_V1_Envelope {
        .with {
            $0.hello = .with {
                $0.minVersion = ProtocolVersion.minimum
                $0.maxVersion = ProtocolVersion.current
                $0.agentID = id
                $0.labels = labels
                $0.capacity = 1
            }
        }
    }

    /// Sends `hello` and returns the first answer.
    func handshake(_ port: Int, _ identity: (Certificate, Certificate.PrivateKey), _ hello: Gantry_V1_Envelope) async throws -> Gantry_V1_Envelope? {
        try await connect(port, as: identity).executeThenClose { inbound, outbound in
            try await outbound.write(hello)
            var frames = inbound.makeAsyncIterator()
            return try await frames.next()
        }
    }

    @Test func labelsRenewalAndForgetOnTheWire() async throws {
        try await withListener { port, core, revocation in
            let identity = try enroll("h", validity: 60)
            // Enrolled with the unrestricted legacy token: `queue` is refused, by name.
            let refused = try await handshake(port, identity, Self.hello("h/1", labels: ["queue": "deploy", "os": "linux"]))
            #expect(refused?.error.code == .labelNotAllowed && refused?.error.fatal == true)
            #expect(refused?.error.message.contains("queue=deploy") == true)

            // A live connection renews, then is closed by a forget.
            try await connect(port, as: identity).executeThenClose { inbound, outbound in
                try await outbound.write(Self.hello("h/1", labels: ["os": "linux"]))
                var frames = inbound.makeAsyncIterator()
                #expect(try await frames.next()?.welcome.version == ProtocolVersion.current)
                let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
                try await outbound.write(.with { $0.renewRequest = .with { $0.csrDer = Data((try? AgentCSR.make(agentID: "h", key: key)) ?? []) } })
                var renewed: Gantry_V1_RenewResponse?
                while renewed == nil, let frame = try await frames.next() {
                    if case .renewResponse(let response) = frame.body { renewed = response }
                }
                let certificate = try Certificate(derEncoded: Array(try #require(renewed).certificateDer))
                #expect(certificate.publicKey == key.publicKey)
                // A second renewal on the same connection right away is refused.
                try await outbound.write(.with { $0.renewRequest = .with { $0.csrDer = Data((try? AgentCSR.make(agentID: "h", key: key)) ?? []) } })
                var again: Gantry_V1_RenewResponse?
                while again == nil, let frame = try await frames.next() {
                    if case .renewResponse(let response) = frame.body { again = response }
                }
                #expect(again?.error.contains("again") == true)

                let forgotten = try await revocation.forget(agentID: "h", by: "test")
                #expect(forgotten.disconnected == ["h/1"])
                var last: Gantry_V1_Envelope?
                while let frame = try await frames.next() { last = frame }
                #expect(last?.error.code == .certificateRevoked)
            }
            // The next connection is refused.
            let after = try await handshake(port, identity, Self.hello("h/1"))
            #expect(after?.error.code == .certificateRevoked)
            #expect(await core.listAgents().first { $0.id == "h/1" }?.connected != true)
            // Another host is untouched.
            let other = try await handshake(port, try enroll("other"), Self.hello("other/1"))
            #expect(other?.welcome.version == ProtocolVersion.current)
        }
    }

    /// Welcomed as `agentID`, sends one `RenewRequest` and returns the answer; the
    /// connection stays open until `body` returns.
    func renewOnce(_ port: Int, _ identity: (Certificate, Certificate.PrivateKey), as agentID: String) async throws -> Gantry_V1_RenewResponse? {
        try await connect(port, as: identity).executeThenClose { inbound, outbound in
            try await outbound.write(Self.hello(agentID))
            var frames = inbound.makeAsyncIterator()
            #expect(try await frames.next()?.welcome.version == ProtocolVersion.current)
            let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
            try await outbound.write(.with { $0.renewRequest = .with { $0.csrDer = Data((try? AgentCSR.make(agentID: agentID, key: key)) ?? []) } })
            while let frame = try await frames.next() {
                if case .renewResponse(let response) = frame.body { return response }
            }
            return nil
        }
    }

    @Test func renewalOnlyWhenDueAndOncePerHostPerMinute() async throws {
        try await withListener { port, _, _ in
            // A fresh 30-day certificate is not due: refused, saying until when.
            let fresh = try enroll("fresh")
            let early = try #require(try await renewOnce(port, fresh, as: "fresh/1"))
            #expect(early.certificateDer.isEmpty)
            #expect(early.error.contains("not due for renewal until"), "\(early.error)")

            // A due one renews on one connection; another connection (another slot) of the
            // same host within the minute is refused.
            let due = try enroll("due", validity: 60)
            let first = try #require(try await renewOnce(port, due, as: "due/1"))
            #expect(first.error.isEmpty, "\(first.error)")
            let renewed = try Certificate(derEncoded: Array(first.certificateDer))
            #expect(PeerCertificate(renewed)?.name == "due")
            let second = try #require(try await renewOnce(port, due, as: "due/2"))
            #expect(second.certificateDer.isEmpty)
            #expect(second.error.contains("less than"), "\(second.error)")

            // Every answer is audited, by and on the host, with the serials or the reason.
            let records = try store.auditRecords(since: nil, actor: nil, object: nil, afterSeq: nil, limit: 100)
                .filter { $0.action == "agent.renew" }
            #expect(records.map(\.outcome) == ["refused", "succeeded", "refused"])
            #expect(records.map(\.actor) == ["agent:fresh", "agent:due", "agent:due"])
            #expect(records.map(\.object) == ["host:fresh", "host:due", "host:due"])
            #expect(records[0].detail.contains("not_due"))
            let serial = try #require(PeerCertificate(due.0)?.serial)
            #expect(records[1].detail.contains(serial) && records[1].detail.contains(PeerCertificate.serial(of: renewed)))
            #expect(records[2].detail.contains("renewed_recently"))
        }
    }

    @Test func aConnectionThatKeepsAskingToRenewIsClosed() async throws {
        try await withListener { port, _, _ in
            let identity = try enroll("spam")
            try await connect(port, as: identity).executeThenClose { inbound, outbound in
                try await outbound.write(Self.hello("spam/1"))
                var frames = inbound.makeAsyncIterator()
                #expect(try await frames.next()?.welcome.version == ProtocolVersion.current)
                let request = Gantry_V1_Envelope.with { $0.renewRequest = .with { $0.csrDer = Data([1]) } }
                // Far more than allowed; the listener closes the connection after the
                // allowed repeats (writes after that may fail: it is closed).
                for _ in 0..<20 { try? await outbound.write(request) }
                var answers = 0
                var errors: [Gantry_V1_Error] = []
                while let frame = try? await frames.next() {
                    if case .renewResponse = frame.body { answers += 1 }
                    if case .error(let error) = frame.body { errors.append(error) }
                }
                // The loop ended: the coordinator closed the connection. Answers queued for
                // the session may be cut by the close; never more than allowed.
                #expect(answers <= AgentListener.maximumRepeatedRenewals + 1)
                #expect(errors.allSatisfy { $0.code == .unexpectedMessage && $0.fatal })
            }
        }
    }
}
