import Crypto
import GantryProtocol
import NIOCore
import Synchronization
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `gantry-agent enroll`: obtains a client certificate from the coordinator.
///
/// The agent generates its key locally and sends only a CSR with the join token, over TLS
/// whose server is accepted only if it presents the CA with the pinned fingerprint (the
/// `kubeadm join` model). The CA then becomes this agent's trust root.
///
/// The pin alone is not enough: the same CA signs agents' client certificates, so the
/// server must also present the coordinator's *server* certificate (`serverAuth`) naming
/// the host dialled (`EnrollmentChecks`). What comes back is written only if it certifies
/// the key generated here, is signed by the pinned CA and is a client certificate.
public struct Enroller: Sendable {
    public var coordinator: HostPort
    public var token: String
    public var caFingerprint: String
    public var name: String
    public var state: AgentStateDirectory

    public init(coordinator: HostPort, token: String, caFingerprint: String, name: String, state: AgentStateDirectory) {
        self.coordinator = coordinator
        self.token = token
        self.caFingerprint = caFingerprint
        self.name = name
        self.state = state
    }

    public func enroll() async throws {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let csr = try AgentCSR.make(agentID: name, key: key)
        let mismatch = Mutex<[String]?>(nil)
        let rejected = Mutex<String?>(nil)
        let connection: AgentChannel.Connection
        do {
            connection = try await AgentChannel.connect(
                to: coordinator, tls: GantryTLS.enrollment(),
                customVerification: GantryTLS.pinnedVerification(
                    fingerprint: caFingerprint, serverHost: coordinator.host,
                    onMismatch: { seen in mismatch.withLock { $0 = seen } },
                    onRejected: { why in rejected.withLock { $0 = why } }))
        } catch {
            throw AgentError.enrollmentRefused("cannot connect to \(coordinator): \(error)")
        }
        let response: Gantry_V1_EnrollResponse = try await connection.executeThenClose { inbound, outbound in
            do {
                try await outbound.write(
                    .with {
                        $0.enrollRequest = .with {
                            $0.token = token
                            $0.agentID = name
                            $0.csrDer = Data(csr)
                        }
                    })
                for try await envelope in inbound {
                    switch envelope.body {
                    case .enrollResponse(let response): return response
                    case .error(let error): throw AgentError.enrollmentRefused(error.message)
                    default: throw AgentError.enrollmentRefused("unexpected reply from the coordinator")
                    }
                }
            } catch let error as AgentError {
                throw error
            } catch {
                if let seen = mismatch.withLock({ $0 }) {
                    throw PKIError.fingerprintMismatch(expected: caFingerprint, presented: seen)
                }
                if let why = rejected.withLock({ $0 }) {
                    throw AgentError.enrollmentRefused("\(coordinator) is not the coordinator: \(why)")
                }
                throw AgentError.enrollmentRefused("TLS handshake with \(coordinator) failed: \(error)")
            }
            if let seen = mismatch.withLock({ $0 }) {
                throw PKIError.fingerprintMismatch(expected: caFingerprint, presented: seen)
            }
            if let why = rejected.withLock({ $0 }) {
                throw AgentError.enrollmentRefused("\(coordinator) is not the coordinator: \(why)")
            }
            throw AgentError.enrollmentRefused("the coordinator closed the connection without answering")
        }
        let certificate = try Certificate(derEncoded: Array(response.certificateDer))
        let ca = try Certificate(derEncoded: Array(response.caCertificateDer))
        guard CertificateEncoding.fingerprint(der: Array(response.caCertificateDer)) == caFingerprint.lowercased() else {
            throw PKIError.fingerprintMismatch(
                expected: caFingerprint, presented: [CertificateEncoding.fingerprint(der: Array(response.caCertificateDer))])
        }
        if let problem = EnrollmentChecks.issuedCertificateProblem(certificate, ca: ca, publicKey: key.publicKey) {
            throw AgentError.enrollmentRefused("not writing what the coordinator sent: \(problem)")
        }
        try AgentDirectories.ensure(state.path, mode: AgentDirectories.privateMode)
        state.removeRenewalLeftovers()
        try SecureFile.write(try CertificateEncoding.pem(ca), to: state.caCertificate, mode: 0o644)
        try SecureFile.write(try CertificateEncoding.pem(key), to: state.privateKey)
        try SecureFile.write(try CertificateEncoding.pem(certificate), to: state.certificate, mode: 0o644)
        let metadata = try JSONEncoder().encode(AgentStateDirectory.Metadata(name: name, coordinator: "\(coordinator)"))
        try SecureFile.write(String(decoding: metadata, as: UTF8.self), to: state.metadata, mode: 0o644)
    }
}
