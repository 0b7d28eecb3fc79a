import Foundation
import GantryProtocol
import NIOSSL

/// How the HTTP API is served: plain HTTP (loopback only, unless the operator insists),
/// or TLS with the coordinator's own certificate or one the operator provides.
public enum APITransport: Sendable, Equatable {
    /// Plain HTTP. `CoordinatorServer` refuses it on an address other than loopback unless
    /// `allowedOffLoopback` (`serve --http-insecure`), and warns when it is allowed.
    case plain(allowedOffLoopback: Bool)
    /// TLS with `STATE/server.pem` (chained with `ca.pem`) and `server.key`: what `init`
    /// made, naming the addresses given there, verifiable with the CA clients pin at login.
    case coordinatorCertificate
    /// TLS with PEM files from the operator: the chain (leaf first) and its private key.
    case operatorCertificate(chain: String, key: String)

    public var isTLS: Bool {
        if case .plain = self { return false }
        return true
    }

    /// A transport that cannot start, saying what to change.
    public struct Refused: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// True for addresses only this host can reach: 127.0.0.0/8, ::1 and `localhost`.
    public static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare == "localhost" || bare == "::1" { return true }
        let octets = bare.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// Checks the transport against the address; returns a warning to log, if any.
    func check(host: String, port: Int) throws(Refused) -> String? {
        guard case .plain(let allowed) = self, !Self.isLoopback(host) else { return nil }
        let address = HostPort(host: host, port: port)
        guard allowed else {
            throw Refused(
                description: "refusing plain HTTP on \(address): API tokens would cross the network in clear text. "
                    + "Serve the API with --http-tls, keep --http on 127.0.0.1 behind a TLS proxy, "
                    + "or pass --http-insecure if another layer encrypts it")
        }
        return "the HTTP API listens on \(address) without TLS (--http-insecure): API tokens cross the network in clear text; use --http-tls"
    }

    /// The server's TLS settings: TLS 1.2 or later, no client certificates (callers
    /// authenticate with API tokens).
    func serverConfiguration(state: CoordinatorStateDirectory) throws -> TLSConfiguration? {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        switch self {
        case .plain: return nil
        case .coordinatorCertificate:
            chain = try Self.certificates(state.serverCertificate, what: "the coordinator's server certificate")
                + Self.certificates(state.caCertificate, what: "the coordinator's CA certificate")
            key = try Self.key(state.serverKey)
        case .operatorCertificate(let chainFile, let keyFile):
            chain = try Self.certificates(chainFile, what: "--http-tls-certificate")
            key = try Self.key(keyFile)
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .none
        return configuration
    }

    private static func certificates(_ path: String, what: String) throws -> [NIOSSLCertificate] {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw Refused(description: "\(what) \(path) cannot be read as PEM certificates: \(error)")
        }
        guard !chain.isEmpty else { throw Refused(description: "\(what) \(path) holds no PEM certificate") }
        return chain
    }

    private static func key(_ path: String) throws -> NIOSSLPrivateKey {
        do {
            return try NIOSSLPrivateKey(file: path, format: .pem)
        } catch {
            throw Refused(description: "the TLS private key \(path) cannot be read as a PEM key: \(error)")
        }
    }
}
