#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftASN1
import X509

/// What the agent checks about the coordinator's certificates, beyond "signed by the CA".
///
/// The Gantry CA signs two kinds of leaf: the coordinator's server certificate
/// (`serverAuth`, with the DNS names and IP addresses agents dial) and agents' client
/// certificates (`clientAuth` only, no names). A peer holding an agent's key (a stolen
/// one, or a step that read it where steps run as the agent's user) must not pass as the
/// coordinator, so the agent accepts as server only a leaf that is not a CA, carries
/// `serverAuth`, and names the host the agent was told to dial.
public enum EnrollmentChecks {
    /// Why `leaf` is not acceptable as the coordinator's certificate for `host` (a DNS
    /// name or an IP literal, as given to `--coordinator`), or nil if it is.
    public static func serverCertificateProblem(_ leaf: Certificate, host: String, now: Date = Date()) -> String? {
        guard leaf.notValidBefore <= now, now <= leaf.notValidAfter else {
            return "the server's certificate is not valid now (valid \(leaf.notValidBefore) to \(leaf.notValidAfter))"
        }
        do {
            if let constraints = try leaf.extensions.basicConstraints, case .isCertificateAuthority = constraints {
                return "the server presented a CA certificate as its own"
            }
            guard let usage = try leaf.extensions.extendedKeyUsage, usage.contains(.serverAuth) else {
                return "the server's certificate is not a server certificate (no serverAuth extended key usage): "
                    + "it may be an agent's certificate, so this is not the coordinator"
            }
            let names = try leaf.extensions.subjectAlternativeNames.map(Array.init) ?? []
            guard matches(names, host: host) else {
                return "the server's certificate does not name \(host) (it names \(describe(names))): "
                    + "dial the coordinator by a name or address it was initialised with (`gantry-coordinator init --advertise`)"
            }
        } catch {
            return "the server's certificate has malformed extensions: \(error)"
        }
        return nil
    }

    /// Why the certificate the coordinator issued at enrollment must not be written, or nil
    /// if it is the agent's: it certifies `publicKey` (the key the agent generated), is
    /// signed by `ca` (the CA whose fingerprint was pinned), is valid now and is a client
    /// certificate.
    public static func issuedCertificateProblem(
        _ certificate: Certificate, ca: Certificate, publicKey: Certificate.PublicKey, now: Date = Date()
    ) -> String? {
        guard certificate.publicKey == publicKey else {
            return "the issued certificate is for another key than the one this agent generated"
        }
        guard certificate.issuer == ca.subject, ca.publicKey.isValidSignature(certificate.signature, for: certificate) else {
            return "the issued certificate is not signed by the pinned CA"
        }
        guard certificate.notValidBefore <= now, now <= certificate.notValidAfter else {
            return "the issued certificate is not valid now (valid \(certificate.notValidBefore) to \(certificate.notValidAfter))"
        }
        guard let usage = try? certificate.extensions.extendedKeyUsage, usage.contains(.clientAuth) else {
            return "the issued certificate is not a client certificate (no clientAuth extended key usage)"
        }
        return nil
    }

    static func matches(_ names: [GeneralName], host: String) -> Bool {
        if let address = CertificateAuthority.ipAddressBytes(host) {
            return names.contains { name in
                if case .ipAddress(let bytes) = name { return Array(bytes.bytes) == address }
                return false
            }
        }
        let wanted = normalized(host)
        return names.contains { name in
            if case .dnsName(let dns) = name { return normalized(dns) == wanted }
            return false
        }
    }

    private static func normalized(_ name: String) -> String {
        var name = name.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        return name
    }

    private static func describe(_ names: [GeneralName]) -> String {
        let described = names.compactMap { name -> String? in
            switch name {
            case .dnsName(let dns): return dns
            case .ipAddress(let bytes):
                let raw = Array(bytes.bytes)
                if raw.count == 4 { return raw.map(String.init).joined(separator: ".") }
                return raw.map { String($0, radix: 16) }.joined(separator: ":")
            default: return nil
            }
        }
        return described.isEmpty ? "no DNS name or IP address" : described.joined(separator: ", ")
    }
}
