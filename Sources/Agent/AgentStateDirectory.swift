import GantryProtocol
import X509

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
/// spool/                 logs not yet acknowledged (a finished step's status is held in
///                        memory until acknowledged)
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

    public func tlsConfiguration() throws -> TLSIdentity {
        guard isEnrolled else { throw AgentError.notEnrolled(path) }
        return TLSIdentity(
            certificate: try CertificateEncoding.readCertificate(pemFile: certificate),
            privateKey: try CertificateEncoding.readPrivateKey(pemFile: privateKey),
            ca: try CertificateEncoding.readCertificate(pemFile: caCertificate))
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

    public var description: String {
        switch self {
        case .notEnrolled(let path):
            return "\(path) holds no enrolled identity: run `gantry-agent enroll --coordinator HOST:PORT --token TOKEN "
                + "--ca-fingerprint sha256:... --state \(path)` first"
        case .enrollmentRefused(let why): return "enrollment refused: \(why)"
        case .handshakeRefused(let why): return "the coordinator refused the handshake: \(why)"
        case .connectionClosed(let why): return "connection closed: \(why)"
        }
    }

    /// What an `Error` frame in answer to `Hello` means: a refusal that retrying cannot
    /// fix (so the process gives up), or a passing failure (so it reconnects).
    static func handshake(_ error: Gantry_V1_Error) -> AgentError {
        switch error.code {
        case .unsupportedVersion, .agentIDMismatch, .certificateRequired, .badToken:
            return .handshakeRefused(error.message)
        default:
            return .connectionClosed(error.message)
        }
    }
}
