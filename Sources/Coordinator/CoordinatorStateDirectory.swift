import Crypto
import Foundation
import GantryProtocol
import X509

/// The files under `--state DIR`: PKI, tokens and the SQLite database.
///
/// ```
/// ca.pem ca.key            the Gantry CA (the key never leaves this directory)
/// server.pem server.key    the coordinator's TLS certificate
/// join.token               lets an agent enroll (0600)
/// admin.token              the HTTP API's bearer token (0600)
/// coordinator.json         the address agents are told to dial, for join-info
/// gantry.sqlite            jobs, attempts, logs (WAL); secrets only sealed
/// secrets.key              the AES-256 key that seals secrets (0600; see SecretKeyFiles)
/// ```
public struct CoordinatorStateDirectory: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public var caCertificate: String { path + "/ca.pem" }
    public var caKey: String { path + "/ca.key" }
    public var serverCertificate: String { path + "/server.pem" }
    public var serverKey: String { path + "/server.key" }
    public var joinToken: String { path + "/join.token" }
    public var adminToken: String { path + "/admin.token" }
    public var metadata: String { path + "/coordinator.json" }
    public var database: String { path + "/gantry.sqlite" }
    public var secretsKey: String { path + "/secrets.key" }

    public struct Metadata: Codable, Sendable {
        public var coordinator: String
        /// The PostgreSQL URL (`init --database`), without its password; nil: the SQLite
        /// file beside this one. Every coordinator sharing the database has it here.
        public var database: String?
    }

    public struct JoinInfo: Codable, Sendable {
        public var token: String
        public var caFingerprint: String
        public var coordinator: String
    }

    public var isInitialized: Bool {
        FileManager.default.fileExists(atPath: caCertificate) && FileManager.default.fileExists(atPath: adminToken)
    }

    /// Creates the CA, server certificate and tokens. Refuses to overwrite an existing state
    /// directory, because that would orphan every enrolled agent.
    public func initialize(advertise: String, dnsNames: [String], ipAddresses: [String], database: String? = nil) throws -> JoinInfo {
        guard !isInitialized else { throw StateError.alreadyInitialized(path) }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        chmod(path, 0o700)
        let authority = try CertificateAuthority.create()
        let (server, serverKey) = try authority.issueServerCertificate(
            commonName: dnsNames.first ?? "gantry-coordinator", dnsNames: dnsNames, ipAddresses: ipAddresses)
        try SecureFile.write(try CertificateEncoding.pem(authority.certificate), to: caCertificate, mode: 0o644)
        try SecureFile.write(try CertificateEncoding.pem(authority.privateKey), to: caKey)
        try SecureFile.write(try CertificateEncoding.pem(server), to: serverCertificate, mode: 0o644)
        try SecureFile.write(try CertificateEncoding.pem(serverKey), to: self.serverKey)
        try SecureFile.write(Self.randomToken() + "\n", to: joinToken)
        try SecureFile.write(Self.randomToken() + "\n", to: adminToken)
        try SecretKey.generate().write(to: secretsKey)
        let data = try JSONEncoder().encode(Metadata(coordinator: advertise, database: database))
        try SecureFile.write(String(decoding: data, as: UTF8.self), to: metadata, mode: 0o644)
        return try joinInfo()
    }

    /// The database `init --database` recorded, or nil for the SQLite default.
    public func databaseURL() throws -> String? {
        guard FileManager.default.fileExists(atPath: metadata) else { return nil }
        return try JSONDecoder().decode(Metadata.self, from: Data(contentsOf: URL(fileURLWithPath: metadata))).database
    }

    /// Records a PostgreSQL database in `coordinator.json` (`migrate-store`), keeping the rest.
    public func record(database: String) throws {
        var current = try JSONDecoder().decode(Metadata.self, from: Data(contentsOf: URL(fileURLWithPath: metadata)))
        current.database = database
        try SecureFile.write(String(decoding: try JSONEncoder().encode(current), as: UTF8.self), to: metadata, mode: 0o644)
    }

    public func joinInfo() throws -> JoinInfo {
        let metadata = try JSONDecoder().decode(
            Metadata.self, from: Data(try CertificateEncoding.readText(self.metadata).utf8))
        return JoinInfo(
            token: try readToken(joinToken),
            caFingerprint: try CertificateEncoding.fingerprint(try CertificateEncoding.readCertificate(pemFile: caCertificate)),
            coordinator: metadata.coordinator)
    }

    public func loadAuthority() throws -> CertificateAuthority {
        CertificateAuthority(
            certificate: try CertificateEncoding.readCertificate(pemFile: caCertificate),
            privateKey: try CertificateEncoding.readPrivateKey(pemFile: caKey))
    }

    public func readToken(_ file: String) throws -> String {
        try CertificateEncoding.readText(file).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// 32 random bytes, hex: long enough that guessing is not an attack.
    static func randomToken() -> String {
        SecretDigest.random256Hex()
    }

    public enum StateError: Error, CustomStringConvertible {
        case alreadyInitialized(String)

        public var description: String {
            switch self {
            case .alreadyInitialized(let path):
                return "\(path) is already initialized; use `gantry-coordinator join-info --state \(path)` "
                    + "to see the join details, or choose another --state directory"
            }
        }
    }
}
