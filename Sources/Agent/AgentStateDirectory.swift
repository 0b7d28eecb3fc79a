import GantryProtocol
import NIOSSL
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The files under the agent's `--state DIR`, written once by `gantry-agent enroll`.
///
/// ```
/// ca.pem                 the Gantry CA this agent trusts (pinned at enrollment)
/// agent.pem agent.key    the agent's client certificate and key (0600)
/// agent.json             the enrolled name and the coordinator address
/// agent.next.pem/.key    a renewed pair being installed (see `installRenewed`)
/// renew.lock             held (flock) by the one slot renewing the certificate
/// spool/                 logs not yet acknowledged (a finished step's status is held in
///                        memory until acknowledged), one dir per slot
/// spool/<slot>.lock      held (flock) by the slot's running process (`LeftoverReclaim`)
/// ```
/// Several agent processes (systemd slots) on one host share one enrolled identity; each
/// runs as `<name>/<slot>`.
public struct AgentStateDirectory: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public var caCertificate: String { path + "/ca.pem" }
    public var certificate: String { path + "/agent.pem" }
    public var privateKey: String { path + "/agent.key" }
    public var metadata: String { path + "/agent.json" }
    public var spool: String { path + "/spool" }
    public var nextCertificate: String { path + "/agent.next.pem" }
    public var nextPrivateKey: String { path + "/agent.next.key" }
    public var renewalLock: String { path + "/renew.lock" }

    public struct Metadata: Codable, Sendable {
        public var name: String
        public var coordinator: String
    }

    public var isEnrolled: Bool {
        FileManager.default.fileExists(atPath: certificate) && FileManager.default.fileExists(atPath: metadata)
    }

    public func readMetadata() throws -> Metadata {
        guard let data = FileManager.default.contents(atPath: metadata) else {
            throw AgentError.notEnrolled(path)
        }
        return try JSONDecoder().decode(Metadata.self, from: data)
    }

    /// The key and the certificate that certifies it, and the CA.
    ///
    /// A renewal (`installRenewed`) replaces the key, then the certificate, so a reader
    /// between the two renames (another slot connecting, or a crash) finds the new key
    /// with the old certificate: the new certificate is then still `agent.next.pem`, and
    /// is used. A pair that changed while it was read is read again (a few times).
    public func tlsConfiguration() throws -> TLSIdentity {
        guard isEnrolled else { throw AgentError.notEnrolled(path) }
        let ca = try CertificateEncoding.readCertificate(pemFile: caCertificate)
        for _ in 0..<3 {
            let key = try CertificateEncoding.readPrivateKey(pemFile: privateKey)
            let current = try CertificateEncoding.readCertificate(pemFile: certificate)
            if current.publicKey == key.publicKey {
                return TLSIdentity(certificate: current, privateKey: key, ca: ca)
            }
            if let next = try? CertificateEncoding.readCertificate(pemFile: nextCertificate), next.publicKey == key.publicKey {
                return TLSIdentity(certificate: next, privateKey: key, ca: ca)
            }
        }
        throw AgentError.identityMismatch(path)
    }

    /// The client TLS configuration from the key and certificate on disk now (a renewal
    /// replaces them while agents run; `AgentRuntime` and `Autoscaler` call this before
    /// each connection).
    public func agentTLS() throws -> TLSConfiguration {
        let identity = try tlsConfiguration()
        return try GantryTLS.agent(certificate: identity.certificate, privateKey: identity.privateKey, ca: identity.ca)
    }

    /// Replaces the key and certificate with a renewed pair, so that no reader and no
    /// crash ever finds a key without its certificate: both are written whole (temporary
    /// file, fsync, rename) as `agent.next.*`, then the key is renamed over `agent.key` and
    /// the certificate over `agent.pem` (`tlsConfiguration` bridges the moment between),
    /// then the directory is synced. Call it holding `RenewalLock`, so two slots never
    /// interleave their renames.
    public func installRenewed(certificate renewed: Certificate, privateKey key: Certificate.PrivateKey) throws {
        try SecureFile.write(try CertificateEncoding.pem(key), to: nextPrivateKey)
        try SecureFile.write(try CertificateEncoding.pem(renewed), to: nextCertificate, mode: 0o644)
        for (from, to) in [(nextPrivateKey, privateKey), (nextCertificate, certificate)] {
            guard rename(from, to) == 0 else {
                throw PKIError.unreadable(path: to, reason: "cannot install the renewed file: \(String(cString: strerror(errno)))")
            }
        }
        let directory = open(path, O_RDONLY | O_DIRECTORY)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    /// Leftovers of a renewal that never finished; enrolling again removes them.
    public func removeRenewalLeftovers() {
        for file in [nextCertificate, nextPrivateKey] { unlink(file) }
    }

    public struct TLSIdentity: Sendable {
        public var certificate: Certificate
        public var privateKey: Certificate.PrivateKey
        public var ca: Certificate
    }
}

public enum AgentError: Error, CustomStringConvertible, Sendable, Equatable {
    case notEnrolled(String)
    case enrollmentRefused(String)
    case handshakeRefused(String)
    case connectionClosed(String)
    case identityMismatch(String)

    public var description: String {
        switch self {
        case .notEnrolled(let path):
            return "\(path) holds no enrolled identity: run `gantry-agent enroll --coordinator HOST:PORT --token TOKEN "
                + "--ca-fingerprint sha256:... --state \(path)` first"
        case .enrollmentRefused(let why): return "enrollment refused: \(why)"
        case .handshakeRefused(let why): return "the coordinator refused the handshake: \(why)"
        case .connectionClosed(let why): return "connection closed: \(why)"
        case .identityMismatch(let path):
            return "\(path)/agent.key does not match \(path)/agent.pem (nor a renewed agent.next.pem): the identity is "
                + "damaged; enroll this host again with `gantry-agent enroll --state \(path)`"
        }
    }

    /// What an `Error` frame in answer to `Hello` means: a refusal that retrying cannot
    /// fix (so the process gives up), or a passing failure (so it reconnects). A label the
    /// enrollment does not allow and a revoked certificate are permanent: the same
    /// certificate and `--labels` are refused every time.
    static func handshake(_ error: Gantry_V1_Error) -> AgentError {
        switch error.code {
        case .unsupportedVersion, .agentIDMismatch, .certificateRequired, .badToken, .labelNotAllowed, .certificateRevoked:
            return .handshakeRefused(error.message)
        default:
            return .connectionClosed(error.message)
        }
    }
}
