import NIOSSL
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the coordinator needs to know about a verified agent certificate: whose it is
/// (its common name, the enrolled host name), which one it is (its serial, the key of its
/// enrollment record) and when it was issued.
///
/// Built only from a certificate that TLS already verified against the Gantry CA, so the
/// fields are the CA's own; still nothing here traps on odd bytes.
public struct PeerCertificate: Sendable, Equatable {
    /// The common name: the host's enrolled name.
    public var name: String
    /// Lowercase hex of the serial number's bytes, as `enrollments.serial` stores it.
    public var serial: String
    public var notValidBefore: Date
    public var notValidAfter: Date

    public init(name: String, serial: String, notValidBefore: Date, notValidAfter: Date) {
        self.name = name
        self.serial = serial
        self.notValidBefore = notValidBefore
        self.notValidAfter = notValidAfter
    }

    /// Nil when the certificate has no common name (the CA never issues one without).
    public init?(_ certificate: Certificate) {
        guard let name = Self.commonName(of: certificate) else { return nil }
        self.init(
            name: name, serial: Self.serial(of: certificate), notValidBefore: certificate.notValidBefore,
            notValidAfter: certificate.notValidAfter)
    }

    public init?(_ certificate: NIOSSLCertificate) {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return nil }
        self.init(parsed)
    }

    /// The serial in the spelling the enrollment records use.
    public static func serial(of certificate: Certificate) -> String {
        CertificateEncoding.hex(certificate.serialNumber.bytes)
    }

    static func commonName(of certificate: Certificate) -> String? {
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                if let text = String(attribute.value) { return text }
            }
        }
        return nil
    }
}
