import Crypto
import Foundation
@testable import GantryAgent
import GantryProtocol
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import SwiftASN1
import Testing
import X509

/// Finding 5 of issue 10: the agent talks only to the coordinator's *server* certificate
/// (not any leaf of the Gantry CA, such as another agent's), and writes only a certificate
/// for its own key from the pinned CA. Each case runs a fake TLS server on 127.0.0.1.
@Suite("Enrollment security", .timeLimit(.minutes(1)))
struct EnrollmentSecurityTests {
    let root = NSTemporaryDirectory() + "gantry-enroll-\(UUID().uuidString)"

    final class Received: Sendable {
        let envelopes = Mutex<[Gantry_V1_Envelope]>([])
        var all: [Gantry_V1_Envelope] { envelopes.withLock { $0 } }
    }

    /// Records what a peer sent and answers an EnrollRequest with `answer`'s envelope.
    final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = Gantry_V1_Envelope
        typealias OutboundOut = Gantry_V1_Envelope
        let received: Received
        let answer: @Sendable (Gantry_V1_EnrollRequest) -> Gantry_V1_Envelope?

        init(received: Received, answer: @escaping @Sendable (Gantry_V1_EnrollRequest) -> Gantry_V1_Envelope?) {
            self.received = received
            self.answer = answer
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            received.envelopes.withLock { $0.append(envelope) }
            if case .enrollRequest(let request) = envelope.body, let reply = answer(request) {
                context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
            }
        }
    }

    /// A TLS server presenting `leaf` with the CA in its chain, as the coordinator does.
    static func fakeServer(
        leaf: Certificate, key: Certificate.PrivateKey, ca: CertificateAuthority, received: Received,
        answer: @escaping @Sendable (Gantry_V1_EnrollRequest) -> Gantry_V1_Envelope? = { _ in nil }
    ) async throws -> Channel {
        let tls = try GantryTLS.server(certificateChain: [leaf, ca.certificate], privateKey: key, ca: ca.certificate)
        let context = try NIOSSLContext(configuration: tls)
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try GantryFraming.addHandlers(to: channel.pipeline.syncOperations)
                    try channel.pipeline.syncOperations.addHandler(Recorder(received: received, answer: answer))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// A leaf of `ca` with the given extended key usages and IP names (what
    /// `CertificateAuthority` never issues, to test each check alone).
    static func leaf(of ca: CertificateAuthority, usages: [ExtendedKeyUsage.Usage], ipAddresses: [String]) throws -> (
        Certificate, Certificate.PrivateKey
    ) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let names: [GeneralName] = ipAddresses.map {
            .ipAddress(ASN1OctetString(contentBytes: ArraySlice(CertificateAuthority.ipAddressBytes($0)!)))
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: Date().addingTimeInterval(-300), notValidAfter: Date().addingTimeInterval(86_400),
            issuer: ca.certificate.subject, subject: try DistinguishedName { CommonName("127.0.0.1") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage(usages)
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: ca.privateKey)
        return (certificate, key)
    }

    /// An agent's client certificate as the coordinator issues it, named like the server.
    static func agentCertificate(of ca: CertificateAuthority) throws -> (Certificate, Certificate.PrivateKey) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let certificate = try ca.signAgentCSR(try AgentCSR.make(agentID: "127.0.0.1", key: key), agentID: "127.0.0.1")
        return (certificate, key)
    }

    /// Enrolls against the fake server on `port`; a server that never answers fails the
    /// test with `TimedOut` instead of hanging it.
    func enroll(port: Int, ca: CertificateAuthority) async throws {
        let enroller = Enroller(
            coordinator: HostPort(host: "127.0.0.1", port: port), token: "join-token-secret",
            caFingerprint: try CertificateEncoding.fingerprint(ca.certificate), name: "host",
            state: AgentStateDirectory(path: root + "/state"))
        try await withDeadline(.seconds(20), "enrollment") { try await enroller.enroll() }
    }

    /// Runs `enroll` against a server presenting `leaf`; returns the error and what the
    /// server received.
    func enrollExpectingRefusal(
        leaf: Certificate, key: Certificate.PrivateKey, ca: CertificateAuthority,
        answer: @escaping @Sendable (Gantry_V1_EnrollRequest) -> Gantry_V1_Envelope? = { _ in nil }
    ) async throws -> (String, [Gantry_V1_Envelope]) {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let received = Received()
        let server = try await Self.fakeServer(leaf: leaf, key: key, ca: ca, received: received, answer: answer)
        defer { server.close(promise: nil) }
        var refusal = ""
        do {
            try await enroll(port: server.localAddress?.port ?? 0, ca: ca)
            Issue.record("enrollment succeeded against a server it should have refused")
        } catch {
            refusal = "\(error)"
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/state/agent.key"))
        #expect(!FileManager.default.fileExists(atPath: root + "/state/agent.pem"))
        return (refusal, received.all)
    }

    static func reply(certificate: Certificate, ca: Certificate) -> Gantry_V1_Envelope {
        .with {
            $0.enrollResponse = .with {
                $0.certificateDer = Data(try! CertificateEncoding.der(certificate))
                $0.caCertificateDer = Data(try! CertificateEncoding.der(ca))
            }
        }
    }

    @Test func aFakeServerPresentingAnAgentCertificateGetsNoJoinToken() async throws {
        let ca = try CertificateAuthority.create()
        let (leaf, key) = try Self.agentCertificate(of: ca)
        let (refusal, received) = try await enrollExpectingRefusal(leaf: leaf, key: key, ca: ca)
        #expect(refusal.contains("not a server certificate"), "\(refusal)")
        #expect(received.isEmpty, "the impostor received \(received)")
    }

    @Test func aClientCertificateIsRefusedEvenWhenItNamesTheHost() async throws {
        let ca = try CertificateAuthority.create()
        let (leaf, key) = try Self.leaf(of: ca, usages: [.clientAuth], ipAddresses: ["127.0.0.1"])
        let (refusal, received) = try await enrollExpectingRefusal(leaf: leaf, key: key, ca: ca)
        #expect(refusal.contains("serverAuth"), "\(refusal)")
        #expect(received.isEmpty)
    }

    @Test func aServerCertificateForAnotherHostIsRefused() async throws {
        let ca = try CertificateAuthority.create()
        let (leaf, key) = try ca.issueServerCertificate(commonName: "other", dnsNames: ["ci.example"], ipAddresses: ["10.9.9.9"])
        let (refusal, received) = try await enrollExpectingRefusal(leaf: leaf, key: key, ca: ca)
        #expect(refusal.contains("does not name 127.0.0.1"), "\(refusal)")
        #expect(received.isEmpty)
    }

    @Test func anIssuedCertificateForAnotherKeyIsNotWritten() async throws {
        let ca = try CertificateAuthority.create()
        let (leaf, key) = try ca.issueServerCertificate(commonName: "coordinator", dnsNames: [], ipAddresses: ["127.0.0.1"])
        let (someoneElse, _) = try Self.agentCertificate(of: ca)
        let (refusal, received) = try await enrollExpectingRefusal(leaf: leaf, key: key, ca: ca) { _ in
            Self.reply(certificate: someoneElse, ca: ca.certificate)
        }
        #expect(refusal.contains("another key"), "\(refusal)")
        #expect(received.count == 1)
    }

    @Test func anIssuedCertificateFromAnotherCAIsNotWritten() async throws {
        let ca = try CertificateAuthority.create()
        let other = try CertificateAuthority.create(commonName: "Gantry CA")
        let (leaf, key) = try ca.issueServerCertificate(commonName: "coordinator", dnsNames: [], ipAddresses: ["127.0.0.1"])
        let (refusal, _) = try await enrollExpectingRefusal(leaf: leaf, key: key, ca: ca) { request in
            let certificate = try! other.signAgentCSR(Array(request.csrDer), agentID: request.agentID)
            return Self.reply(certificate: certificate, ca: ca.certificate)
        }
        #expect(refusal.contains("not signed by the pinned CA"), "\(refusal)")
    }

    @Test func theRealServerCertificateEnrollsIntoA0700StateDir() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ca = try CertificateAuthority.create()
        let (leaf, key) = try ca.issueServerCertificate(commonName: "coordinator", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
        let received = Received()
        let server = try await Self.fakeServer(leaf: leaf, key: key, ca: ca, received: received) { request in
            let certificate = try! ca.signAgentCSR(Array(request.csrDer), agentID: request.agentID)
            return Self.reply(certificate: certificate, ca: ca.certificate)
        }
        defer { server.close(promise: nil) }
        try await enroll(port: server.localAddress?.port ?? 0, ca: ca)
        #expect(AgentDirectories.mode(of: root + "/state") == 0o700)
        #expect(AgentDirectories.mode(of: root + "/state/agent.key") == 0o600)
        let identity = try AgentStateDirectory(path: root + "/state").tlsConfiguration()
        #expect(identity.certificate.publicKey == identity.privateKey.publicKey)
    }

    /// After enrollment the agent connects with full verification; BoringSSL's purpose
    /// check must refuse a leaf without serverAuth even when it names the host.
    @Test func anEnrolledAgentRefusesAClientCertificateAsTheServer() async throws {
        let ca = try CertificateAuthority.create()
        let (agentLeaf, agentKey) = try Self.agentCertificate(of: ca)
        let tls = try GantryTLS.agent(certificate: agentLeaf, privateKey: agentKey, ca: ca.certificate)

        let (impostor, impostorKey) = try Self.leaf(of: ca, usages: [.clientAuth], ipAddresses: ["127.0.0.1"])
        let received = Received()
        let server = try await Self.fakeServer(leaf: impostor, key: impostorKey, ca: ca, received: received)
        defer { server.close(promise: nil) }
        await #expect(throws: (any Error).self) {
            try await Self.helloRoundTrip(port: server.localAddress?.port ?? 0, tls: tls)
        }
        #expect(received.all.isEmpty)

        // Control: the same client accepts the coordinator's real server certificate.
        let (genuine, genuineKey) = try ca.issueServerCertificate(commonName: "c", dnsNames: [], ipAddresses: ["127.0.0.1"])
        let heard = Received()
        let good = try await Self.fakeServer(leaf: genuine, key: genuineKey, ca: ca, received: heard)
        defer { good.close(promise: nil) }
        try? await Self.helloRoundTrip(port: good.localAddress?.port ?? 0, tls: tls)
        try await waitFor { heard.all.count == 1 }
    }

    /// Sends a Hello and waits (bounded) for the server to answer or close.
    static func helloRoundTrip(port: Int, tls: TLSConfiguration) async throws {
        let connection = try await AgentChannel.connect(to: HostPort(host: "127.0.0.1", port: port), tls: tls)
        try await connection.executeThenClose { inbound, outbound in
            try await outbound.write(.with { $0.hello = .with { $0.agentID = "host/1" } })
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { for try await _ in inbound {} }
                group.addTask { try await Task.sleep(for: .milliseconds(500)) }
                try await group.next()
                group.cancelAll()
            }
        }
    }
}
