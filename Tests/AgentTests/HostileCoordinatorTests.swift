import Crypto
import Foundation
@testable import GantryAgent
import GantryProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import Testing
import X509

/// The real `AgentRuntime` against a fake coordinator on 127.0.0.1 that sends values out
/// of range: the agent refuses the lease or drops the connection, and never traps.
@Suite("Hostile coordinator", .serialized, .timeLimit(.minutes(1)))
struct HostileCoordinatorTests {
    let root = NSTemporaryDirectory() + "gantry-hostile-\(UUID().uuidString)"

    final class Script: ChannelInboundHandler, Sendable {
        typealias InboundIn = Gantry_V1_Envelope
        typealias OutboundOut = Gantry_V1_Envelope
        let received = Mutex<[Gantry_V1_Envelope]>([])
        let welcome: Gantry_V1_Welcome
        let leases: [Gantry_V1_Lease]

        init(welcome: Gantry_V1_Welcome, leases: [Gantry_V1_Lease]) {
            self.welcome = welcome
            self.leases = leases
        }

        var all: [Gantry_V1_Envelope] { received.withLock { $0 } }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            received.withLock { $0.append(envelope) }
            switch envelope.body {
            case .hello:
                context.writeAndFlush(wrapOutboundOut(.with { $0.welcome = welcome }), promise: nil)
            case .ready:
                for lease in leases { context.write(wrapOutboundOut(.with { $0.lease = lease }), promise: nil) }
                context.flush()
            default:
                break
            }
        }
    }

    func withAgent(
        welcome: Gantry_V1_Welcome, leases: [Gantry_V1_Lease], until done: @escaping @Sendable (Script) -> Bool
    ) async throws -> Script {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ca = try CertificateAuthority.create()
        let (serverCertificate, serverKey) = try ca.issueServerCertificate(commonName: "c", dnsNames: [], ipAddresses: ["127.0.0.1"])
        let agentKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let agentCertificate = try ca.signAgentCSR(try AgentCSR.make(agentID: "h", key: agentKey), agentID: "h")
        let context = try NIOSSLContext(
            configuration: try GantryTLS.server(certificateChain: [serverCertificate, ca.certificate], privateKey: serverKey, ca: ca.certificate))
        let script = Script(welcome: welcome, leases: leases)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try GantryFraming.addHandlers(to: channel.pipeline.syncOperations)
                    try channel.pipeline.syncOperations.addHandler(script)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }

        var options = AgentRuntime.Options(
            coordinator: HostPort(host: "127.0.0.1", port: server.localAddress?.port ?? 0), agentID: "h/1", labels: [:],
            workRoot: root + "/work", spoolDirectory: root + "/spool",
            backoff: Backoff(minimum: .milliseconds(50), maximum: .milliseconds(100)))
        options.useCgroups = false
        let runtime = AgentRuntime(
            options: options, tls: try GantryTLS.agent(certificate: agentCertificate, privateKey: agentKey, ca: ca.certificate),
            logger: Logger(label: "hostile-coordinator-test"))
        let running = Task { try await runtime.run() }
        try await waitFor(.seconds(20)) { done(script) }
        await runtime.cancelAll(reason: "test over")
        // An agent that does not stop fails the test instead of hanging it.
        try await withDeadline(.seconds(60), "the agent's shutdown") { _ = try? await running.value }
        return script
    }

    static func lease(_ change: (inout Gantry_V1_Lease) -> Void) -> Gantry_V1_Lease {
        var lease = Gantry_V1_Lease.with {
            $0.jobID = "job-\(UUID().uuidString)"
            $0.attempt = 1
            $0.commands = ["true"]
        }
        change(&lease)
        return lease
    }

    @Test func leasesWithValuesOutOfRangeAreRefusedWithAReason() async throws {
        let bad = [
            Self.lease { $0.timeoutSeconds = UInt32.max },
            Self.lease { $0.cancelGraceSeconds = UInt32.max },
            Self.lease { $0.jobID = "../../../etc/cron.d/x" },
            Self.lease { $0.commands = ["echo \0"] },
        ]
        let script = try await withAgent(
            welcome: .with {
                $0.version = ProtocolVersion.current
                $0.heartbeatIntervalMs = 500
                $0.leaseTtlMs = 5000
            }, leases: bad
        ) { script in
            script.all.filter { if case .leaseAck = $0.body { return true } else { return false } }.count >= 4
        }
        let acks = script.all.compactMap { envelope -> Gantry_V1_LeaseAck? in
            if case .leaseAck(let ack) = envelope.body { return ack }
            return nil
        }
        #expect(acks.count == 4)
        #expect(acks.allSatisfy { !$0.accepted && !$0.reason.isEmpty }, "\(acks)")
        #expect(acks.contains { $0.reason.contains("timeout_seconds") })
        #expect(acks.contains { $0.reason.contains("cancel_grace_seconds") })
        #expect(acks.contains { $0.reason.contains("job_id") })
        #expect(!script.all.contains { if case .jobStarted = $0.body { return true } else { return false } })
        #expect(!FileManager.default.fileExists(atPath: root + "/etc"))
    }

    @Test func aWelcomeWithAbsurdTimingDropsTheConnectionAndTheAgentReconnects() async throws {
        let script = try await withAgent(
            welcome: .with {
                $0.version = ProtocolVersion.current
                $0.heartbeatIntervalMs = UInt32.max
                $0.leaseTtlMs = UInt32.max
            }, leases: []
        ) { script in
            script.all.filter { if case .hello = $0.body { return true } else { return false } }.count >= 2
        }
        let hellos = script.all.filter { if case .hello = $0.body { return true } else { return false } }
        #expect(hellos.count >= 2, "the agent reconnects after refusing the Welcome")
        // It never offered slots on a connection whose timing it refused.
        #expect(!script.all.contains { if case .ready = $0.body { return true } else { return false } })
    }
}
