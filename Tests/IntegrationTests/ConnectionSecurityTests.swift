import Crypto
import Foundation
import GantryProtocol
import NIOCore
import NIOPosix
import NIOSSL
import Testing
import X509

/// Raw protocol clients against the real coordinator: whatever one bad client does, it
/// alone is refused and the coordinator keeps serving everyone else.
@Suite("Connection security and bad input", .serialized, .timeLimit(.minutes(5)))
struct ConnectionSecurityTests {
    typealias Connection = NIOAsyncChannel<Gantry_V1_Envelope, Gantry_V1_Envelope>

    static func connect(_ address: String, tls: TLSConfiguration, maximumFrameSize: Int = GantryFraming.defaultMaximumFrameSize)
        async throws -> Connection
    {
        let parts = address.split(separator: ":")
        let context = try NIOSSLContext(configuration: tls)
        return try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: String(parts[0]), port: Int(parts[1])!) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try GantryFraming.addHandlers(to: channel.pipeline.syncOperations, maximumFrameSize: maximumFrameSize)
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Sends `frames` and returns the first frame the coordinator answers with (nil if it
    /// closed the connection without one), then whether the connection was closed.
    static func exchange(_ connection: Connection, _ frames: [Gantry_V1_Envelope]) async throws -> Gantry_V1_Envelope? {
        try await connection.executeThenClose { inbound, outbound in
            for frame in frames { try await outbound.write(frame) }
            var iterator = inbound.makeAsyncIterator()
            let reply = try await iterator.next()
            // A fatal error is followed by the server closing the connection.
            if reply?.error.fatal == true { let extra = try await iterator.next(); #expect(extra == nil, "\(String(describing: reply)) then \(String(describing: extra))") }
            return reply
        }
    }

    static func caTLS(_ cluster: TestCluster) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.trustRoots = .certificates([try NIOSSLCertificate.fromPEMFile(cluster.coordinatorState + "/ca.pem")[0]])
        tls.certificateVerification = .noHostnameVerification
        return tls
    }

    static func agentTLS(_ cluster: TestCluster) throws -> TLSConfiguration {
        var tls = try caTLS(cluster)
        tls.certificateChain = [.certificate(try NIOSSLCertificate.fromPEMFile(cluster.agentState + "/agent.pem")[0])]
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: cluster.agentState + "/agent.key", format: .pem))
        return tls
    }

    static func hello(agentID: String = "testhost/raw", min: UInt32 = ProtocolVersion.minimum, max: UInt32 = ProtocolVersion.current) -> Gantry_V1_Envelope {
        .with {
            $0.hello = .with {
                $0.minVersion = min
                $0.maxVersion = max
                $0.agentID = agentID
                $0.capacity = 1
            }
        }
    }

    /// After every bad client: a real pipeline still runs on the real agent.
    static func expectStillServing(_ cluster: TestCluster) async throws {
        let pipeline = try await cluster.submit("steps:\n  - key: still-ok\n    command: echo alive\n")
        let done = try await cluster.waitForPipeline(pipeline.id, timeout: .seconds(30))
        #expect(done.state == "succeeded")
    }

    @Test func badClientsAreRefusedAndTheCoordinatorKeepsServing() async throws {
        try await TestCluster.with("security") { cluster in
            try await cluster.startAgent(slot: "1")

            // 1. No client certificate: only enrollment is allowed; Hello is refused.
            let noCert = try await Self.exchange(try await Self.connect(cluster.agentAddress, tls: try Self.caTLS(cluster)), [Self.hello()])
            #expect(noCert?.error.code == .certificateRequired)
            #expect(noCert?.error.message.contains("gantry-agent enroll") == true)

            // 2. A certificate from another CA: the TLS handshake itself fails.
            let rogueCA = try CertificateAuthority.create(commonName: "Rogue CA")
            let rogueKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
            let rogueCert = try rogueCA.signAgentCSR(try AgentCSR.make(agentID: "testhost", key: rogueKey), agentID: "testhost")
            var rogueTLS = try Self.caTLS(cluster)
            rogueTLS.certificateChain = [.certificate(try GantryTLS.nio(rogueCert))]
            rogueTLS.privateKey = .privateKey(try GantryTLS.nio(rogueKey))
            await #expect(throws: (any Error).self) {
                _ = try await Self.exchange(try await Self.connect(cluster.agentAddress, tls: rogueTLS), [Self.hello()])
        }

        // 3. Wrong protocol version: a clear error naming both ranges, then close.
        let oldVersion = try await Self.exchange(
            try await Self.connect(cluster.agentAddress, tls: try Self.agentTLS(cluster)), [Self.hello(min: 99, max: 120)])
        #expect(oldVersion?.error.code == .unsupportedVersion)
        #expect(oldVersion?.error.message.contains("99...120") == true)

        // 4. A certificate whose name does not cover the claimed agent id.
        let impostor = try await Self.exchange(
            try await Self.connect(cluster.agentAddress, tls: try Self.agentTLS(cluster)), [Self.hello(agentID: "otherhost/1")])
        #expect(impostor?.error.code == .agentIDMismatch)

        // 5. Oversized frame: refused from its length prefix alone.
        let big = Gantry_V1_Envelope.with { $0.drain = .with { $0.reason = String(repeating: "x", count: 9 * 1024 * 1024) } }
        let oversized = try await Self.exchange(
            try await Self.connect(cluster.agentAddress, tls: try Self.agentTLS(cluster), maximumFrameSize: 64 * 1024 * 1024),
            [Self.hello(), big])
        // The first reply is the Welcome; the error follows it.
        #expect(oversized?.welcome.version == ProtocolVersion.current || oversized?.error.code == .frameTooLarge)

        // 6. A message before the handshake.
        let early = try await Self.exchange(
            try await Self.connect(cluster.agentAddress, tls: try Self.agentTLS(cluster)), [.with { $0.ready = .with { $0.slots = 1 } }])
        #expect(early?.error.code == .unexpectedMessage)

        // 7. Enrollment with a wrong token.
        let (enrolled, output) = try await cluster.enroll(name: "intruder", state: cluster.root + "/intruder", token: "wrong")
        #expect(!enrolled)
        #expect(output.contains("join token is wrong"))

        try await Self.expectStillServing(cluster)
        }
    }

    @Test func oversizedFrameClosesOnlyThatConnection() async throws {
        try await TestCluster.with("oversized") { cluster in
            try await cluster.startAgent(slot: "1")
            let connection = try await Self.connect(
                cluster.agentAddress, tls: try Self.agentTLS(cluster), maximumFrameSize: 64 * 1024 * 1024)
            let replies: [Gantry_V1_Envelope] = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(Self.hello())
                var iterator = inbound.makeAsyncIterator()
                var replies: [Gantry_V1_Envelope] = []
                if let welcome = try await iterator.next() { replies.append(welcome) }
                try await outbound.write(
                    .with { $0.drain = .with { $0.reason = String(repeating: "x", count: 9 * 1024 * 1024) } })
                while let reply = try await iterator.next() { replies.append(reply) }
                return replies
        }
        #expect(replies.first?.welcome.version == ProtocolVersion.current)
        #expect(replies.last?.error.code == .frameTooLarge)
        #expect(replies.last?.error.fatal == true)
        try await Self.expectStillServing(cluster)
        }
    }
}
