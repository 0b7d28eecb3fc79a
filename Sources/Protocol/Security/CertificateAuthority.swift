import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import SwiftASN1
import X509

/// The Gantry CA: issues the coordinator's server certificate and agents' client certificates.
///
/// Everything is done in Swift with swift-certificates (no `openssl` on the PATH needed).
/// Keys are P-256. The server certificate carries `serverAuth` and the DNS/IP names agents
/// dial; agent certificates carry `clientAuth` only and no names, so an enrolled agent's
/// certificate can never be used to impersonate the coordinator.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    public let privateKey: Certificate.PrivateKey

    public init(certificate: Certificate, privateKey: Certificate.PrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    /// A new self-signed CA valid for ten years.
    public static func create(commonName: String = "Gantry CA", now: Date = Date()) throws -> CertificateAuthority {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName("Gantry")
            CommonName(commonName)
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(10 * 365 * 86_400),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: key
        )
        return CertificateAuthority(certificate: certificate, privateKey: key)
    }

    /// The coordinator's server certificate for the given DNS names and IP addresses.
    public func issueServerCertificate(
        commonName: String, dnsNames: [String], ipAddresses: [String], now: Date = Date()
    ) throws -> (Certificate, Certificate.PrivateKey) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for address in ipAddresses {
            guard let bytes = Self.ipAddressBytes(address) else {
                throw PKIError.invalidAddress(address)
            }
            names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(5 * 365 * 86_400),
            issuer: self.certificate.subject,
            subject: try DistinguishedName {
                OrganizationName("Gantry")
                CommonName(commonName)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
                AuthorityKeyIdentifier(keyIdentifier: try self.keyIdentifier())
            },
            issuerPrivateKey: self.privateKey
        )
        return (certificate, key)
    }

    /// How long an agent certificate is valid unless the coordinator is told otherwise
    /// (`serve --agent-certificate-days`): short enough that a stolen key stops working on
    /// its own within a month, long enough that an agent offline for a few weeks can still
    /// reconnect and renew (agents renew once two thirds of it have passed).
    public static let defaultAgentCertificateValidity: TimeInterval = 30 * 86_400

    /// Signs an agent's CSR after checking its self-signature. The certificate's common
    /// name is `agentID` (chosen by the coordinator, not copied blindly from the CSR). It is
    /// valid from five minutes before `now` (clock skew) for `validity` seconds after `now`.
    public func signAgentCSR(
        _ csrDER: [UInt8], agentID: String, validity: TimeInterval = CertificateAuthority.defaultAgentCertificateValidity,
        now: Date = Date()
    ) throws -> Certificate {
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(derEncoded: csrDER)
        } catch {
            throw PKIError.invalidCSR("not a DER PKCS#10 request: \(error)")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw PKIError.invalidCSR("the request's signature does not match its public key")
        }
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: csr.publicKey,
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(validity),
            issuer: self.certificate.subject,
            subject: try DistinguishedName {
                OrganizationName("Gantry agents")
                CommonName(agentID)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
                AuthorityKeyIdentifier(keyIdentifier: try self.keyIdentifier())
            },
            issuerPrivateKey: self.privateKey
        )
    }

    private func keyIdentifier() throws -> ArraySlice<UInt8> {
        ArraySlice(SubjectKeyIdentifier(hash: self.certificate.publicKey).keyIdentifier)
    }

    /// The address in network byte order, or nil if `text` is not an IPv4 or IPv6 literal.
    public static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}

/// A CSR for an agent key: the agent keeps its private key and sends only this.
public enum AgentCSR {
    public static func make(agentID: String, key: Certificate.PrivateKey) throws -> [UInt8] {
        let csr = try CertificateSigningRequest(
            version: .v1,
            subject: try DistinguishedName { CommonName(agentID) },
            privateKey: key,
            attributes: CertificateSigningRequest.Attributes(),
            signatureAlgorithm: .ecdsaWithSHA256
        )
        var serializer = DER.Serializer()
        try serializer.serialize(csr)
        return serializer.serializedBytes
    }
}

public enum PKIError: Error, CustomStringConvertible, Equatable, Sendable {
    case invalidCSR(String)
    case invalidAddress(String)
    case missingFile(String)
    case unreadable(path: String, reason: String)
    case fingerprintMismatch(expected: String, presented: [String])

    public var description: String {
        switch self {
        case .invalidCSR(let why): return "invalid certificate signing request: \(why)"
        case .invalidAddress(let text): return "'\(text)' is not an IPv4 or IPv6 address"
        case .missingFile(let path):
            return "\(path) does not exist: run `gantry-coordinator init` or `gantry-agent enroll` first"
        case .unreadable(let path, let reason): return "cannot read \(path): \(reason)"
        case .fingerprintMismatch(let expected, let presented):
            return "the coordinator's CA fingerprint is not \(expected) (it presented \(presented.joined(separator: ", "))): "
                + "check --ca-fingerprint against `gantry-coordinator join-info`, or you are talking to the wrong server"
        }
    }
}
