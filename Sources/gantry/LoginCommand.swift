import ArgumentParser
import Foundation
import GantryProtocol
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// `gantry login`: saves the server, the token and (for https) the coordinator's CA, so
/// later commands need no flags and verify the server against that CA.
///
/// The CA is pinned like agent enrollment pins it: the CLI fetches the server's chain
/// without trusting it, keeps it only if it holds a CA with the fingerprint the operator
/// gave (`gantry-coordinator join-info` prints it) that signed a currently valid server
/// certificate naming the host, then proves the token over a connection verified
/// against that CA before saving anything.
struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Save the server, token and pinned CA under ~/.config/gantry for later commands.")

    @Option(help: "Coordinator API URL, e.g. https://ci.example.com:7080.") var server: String
    @Option(help: "API token (env GANTRY_TOKEN).") var token: String?
    @Option(help: "The coordinator CA's fingerprint (sha256:HEX, from `gantry-coordinator join-info`) to pin.")
    var caFingerprint: String?
    @Option(help: "A PEM CA to pin instead of fetching one by fingerprint.") var caFile: String?

    func validate() throws {
        if caFingerprint != nil, caFile != nil { throw ValidationError("give --ca-fingerprint or --ca-file, not both") }
        if let caFingerprint, !Self.isFingerprint(caFingerprint) {
            throw ValidationError("--ca-fingerprint is sha256: and 64 hex digits, as `gantry-coordinator join-info` prints it")
        }
    }

    func run() async throws {
        let base = try Connection.baseURL(server)
        guard let url = URLComponents(string: base), let scheme = url.scheme, let host = url.host, !host.isEmpty else {
            throw ValidationError("--server is not a URL: \(server.prefix(100))")
        }
        guard let token = token ?? ProcessInfo.processInfo.environment["GANTRY_TOKEN"], !token.isEmpty else {
            throw ValidationError("pass --token or set GANTRY_TOKEN (an admin's is in STATE/admin.token)")
        }
        var ca: [UInt8]?
        if scheme == "https" {
            if let caFingerprint {
                ca = try await Self.fetchPinnedCA(host: host, port: url.port ?? 443, fingerprint: caFingerprint)
            } else if let caFile {
                ca = try CLIConfig.readCA(caFile, flag: "--ca-file")
            }
        } else if caFingerprint != nil || caFile != nil {
            throw ValidationError("a CA is only pinned for an https:// server")
        }
        let client = try APIClient(base: base, token: token, trustedCA: ca)
        defer { client.shutdown() }
        let me: API.WhoAmI = try await client.send("GET", APIRoute.whoami.path)
        if let ca {
            try CLIConfig.save(String(decoding: ca, as: UTF8.self), to: CLIConfig.ca)
        } else {
            // A CA pinned for an earlier server must not apply to this one.
            try? FileManager.default.removeItem(atPath: CLIConfig.ca)
        }
        try CLIConfig.save(base + "\n", to: CLIConfig.server)
        try CLIConfig.save(token + "\n", to: CLIConfig.token)
        print("Logged in to \(base) as \(me.identity) (\(me.roles.map(\.description).joined(separator: ", ")))"
            + (ca != nil ? "; CA pinned in \(CLIConfig.ca)" : ""))
    }

    static func isFingerprint(_ text: String) -> Bool {
        let hex = text.lowercased()
        guard hex.hasPrefix("sha256:") else { return false }
        let digits = hex.dropFirst("sha256:".count)
        return digits.count == 64 && digits.allSatisfy(\.isHexDigit)
    }

    /// Connects without trusting the server, accepts it only through
    /// `GantryTLS.pinnedVerification`, and returns the pinned CA as PEM.
    static func fetchPinnedCA(host: String, port: Int, fingerprint: String) async throws -> [UInt8] {
        let wanted = fingerprint.lowercased()
        let mismatch = Mutex<[String]?>(nil)
        let rejected = Mutex<String?>(nil)
        let pinnedDER = Mutex<[UInt8]?>(nil)
        let pinned = GantryTLS.pinnedVerification(
            fingerprint: wanted, serverHost: host, onMismatch: { seen in mismatch.withLock { $0 = seen } },
            onRejected: { why in rejected.withLock { $0 = why } })
        let verify: @Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResult>) -> Void = { chain, promise in
            for certificate in chain {
                if let der = try? certificate.toDERBytes(), CertificateEncoding.fingerprint(der: der) == wanted {
                    pinnedDER.withLock { $0 = der }
                }
            }
            pinned(chain, promise)
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        // The pinned callback checks the chain and the host name itself.
        tls.certificateVerification = .noHostnameVerification
        let context = try NIOSSLContext(configuration: tls)
        let isIP = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(10))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: context, serverHostname: isIP ? nil : host, customVerificationCallback: verify))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            // Asking for /v1/health completes the handshake (or fails it); the first bytes
            // of the answer show it is done, and nothing more is read.
            try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "GET /v1/health HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n"))
                for try await _ in inbound { break }
            }
        } catch {
            if let seen = mismatch.withLock({ $0 }) {
                throw CLIError(
                    "refusing \(host):\(port): its certificate chain has no CA with fingerprint \(wanted) "
                        + "(it presented \(seen.joined(separator: ", "))). Check the fingerprint with `gantry-coordinator join-info`")
            }
            if let why = rejected.withLock({ $0 }) {
                throw CLIError("refusing \(host):\(port): \(why)")
            }
            throw CLIError("TLS connection to \(host):\(port) failed: \(error)")
        }
        guard mismatch.withLock({ $0 }) == nil, rejected.withLock({ $0 }) == nil, let der = pinnedDER.withLock({ $0 }) else {
            throw CLIError("refusing \(host):\(port): its certificate chain was not verified against \(wanted)")
        }
        return Array(pem(der: der).utf8)
    }

    /// A DER certificate as PEM: base64 in 64-character lines.
    static func pem(der: [UInt8]) -> String {
        let base64 = Array(Data(der).base64EncodedString().utf8)
        var lines: [String] = []
        var start = 0
        while start < base64.count {
            let end = min(start + 64, base64.count)
            lines.append(String(decoding: base64[start..<end], as: UTF8.self))
            start = end
        }
        return "-----BEGIN CERTIFICATE-----\n" + lines.joined(separator: "\n") + "\n-----END CERTIFICATE-----\n"
    }
}
