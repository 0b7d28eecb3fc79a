import NIOCore
import NIOSSL
import X509

/// TLS settings for both ends. TLS 1.3 only; there is no plaintext mode.
public enum GantryTLS {
    /// The coordinator's listener.
    ///
    /// Client certificates are *optional at the TLS layer* so that a not-yet-enrolled agent
    /// can open a connection whose only permitted message is `EnrollRequest` (guarded by the
    /// join token). A certificate that *is* presented must chain to the Gantry CA, or the
    /// handshake fails. Every other message requires a verified client certificate; the
    /// coordinator's connection gate enforces that, so the effective policy is mutual TLS.
    public static func server(
        certificateChain: [Certificate], privateKey: Certificate.PrivateKey, ca: Certificate
    ) throws -> TLSConfiguration {
        var config = TLSConfiguration.makeServerConfiguration(
            certificateChain: try certificateChain.map { .certificate(try nio($0)) },
            privateKey: .privateKey(try nio(privateKey))
        )
        config.minimumTLSVersion = .tlsv13
        config.trustRoots = .certificates([try nio(ca)])
        config.certificateVerification = .optionalVerification
        // A peer that stops reading (e.g. one refused for an oversized frame) never answers
        // close_notify; don't let it hold a connection (and shutdown) for NIOSSL's default 5 s.
        config.shutdownTimeout = .seconds(1)
        return config
    }

    /// An enrolled agent: presents its client certificate and verifies the coordinator
    /// against the Gantry CA, including its DNS name or IP address.
    public static func agent(
        certificate: Certificate, privateKey: Certificate.PrivateKey, ca: Certificate
    ) throws -> TLSConfiguration {
        var config = TLSConfiguration.makeClientConfiguration()
        config.minimumTLSVersion = .tlsv13
        config.trustRoots = .certificates([try nio(ca)])
        config.certificateChain = [.certificate(try nio(certificate))]
        config.privateKey = .privateKey(try nio(privateKey))
        config.certificateVerification = .fullVerification
        return config
    }

    /// An agent enrolling: it has no CA yet, only the CA's fingerprint (from `join-info`).
    /// Use with `pinnedVerification(fingerprint:)` as the custom verification callback.
    public static func enrollment() -> TLSConfiguration {
        var config = TLSConfiguration.makeClientConfiguration()
        config.minimumTLSVersion = .tlsv13
        config.certificateVerification = .noHostnameVerification
        return config
    }

    /// Accepts the server only if its chain contains a CA whose SHA-256 fingerprint is
    /// `fingerprint`, the leaf is signed by that CA and currently valid, and the leaf is the
    /// coordinator's server certificate for `serverHost` (`serverAuth`, names the host:
    /// `EnrollmentChecks.serverCertificateProblem`), so another agent's certificate from the
    /// same CA cannot receive the join token. Reports a fingerprint mismatch through
    /// `onMismatch` and any other refusal through `onRejected`, so the CLI can say what it saw.
    public static func pinnedVerification(
        fingerprint: String, serverHost: String, onMismatch: @escaping @Sendable ([String]) -> Void,
        onRejected: @escaping @Sendable (String) -> Void = { _ in }
    ) -> @Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResult>) -> Void {
        { chain, promise in
            do {
                let ders = try chain.map { try $0.toDERBytes() }
                let fingerprints = ders.map { CertificateEncoding.fingerprint(der: $0) }
                guard let caIndex = fingerprints.firstIndex(of: fingerprint.lowercased()), let leafDER = ders.first
                else {
                    onMismatch(fingerprints)
                    promise.succeed(.failed)
                    return
                }
                let ca = try Certificate(derEncoded: ders[caIndex])
                let leaf = try Certificate(derEncoded: leafDER)
                guard caIndex != 0, ca.publicKey.isValidSignature(leaf.signature, for: leaf) else {
                    onRejected("the server's certificate is not signed by the pinned CA")
                    promise.succeed(.failed)
                    return
                }
                if let problem = EnrollmentChecks.serverCertificateProblem(leaf, host: serverHost) {
                    onRejected(problem)
                    promise.succeed(.failed)
                    return
                }
                promise.succeed(.certificateVerified)
            } catch {
                onRejected("the server's certificate chain cannot be parsed: \(error)")
                promise.succeed(.failed)
            }
        }
    }

    public static func nio(_ certificate: Certificate) throws -> NIOSSLCertificate {
        try NIOSSLCertificate(bytes: try CertificateEncoding.der(certificate), format: .der)
    }

    public static func nio(_ key: Certificate.PrivateKey) throws -> NIOSSLPrivateKey {
        try NIOSSLPrivateKey(bytes: Array(try CertificateEncoding.pem(key).utf8), format: .pem)
    }

    /// The common name of a verified peer certificate, which for agents is the enrolled name.
    public static func commonName(of certificate: NIOSSLCertificate) -> String? {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else {
            return nil
        }
        for rdn in parsed.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                if let text = String(attribute.value) { return text }
            }
        }
        return nil
    }
}

