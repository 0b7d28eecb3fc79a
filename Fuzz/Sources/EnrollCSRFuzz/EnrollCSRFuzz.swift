import Crypto
import Foundation
import FuzzSupport
import GantryProtocol
import SwiftASN1
import X509

/// Bytes → `CertificateAuthority.signAgentCSR`, what the coordinator's enrollment does
/// with an `EnrollRequest`'s `csr_der` once the join token matched: parse the PKCS#10
/// request (SwiftASN1, swift-certificates), check its self-signature, issue a certificate,
/// and encode it (`CertificateEncoding.der`) for the `EnrollResponse`.
///
/// Properties checked on every certificate issued (a violation traps): it carries the
/// request's public key, the coordinator-chosen name (never one from the request), is not
/// a CA, and its DER parses back to the same certificate.
@main
enum EnrollCSRFuzz {
    static let agentID = "fuzz-host-0"
    static let authority: CertificateAuthority = {
        do { return try CertificateAuthority.create() } catch { Fuzzer.fail("cannot create a CA: \(error)") }
    }()

    static func main() {
        Fuzzer.main(seeds: seeds, testOneInput: { data, count in
            EnrollCSRFuzz.run(Fuzzer.bytes(data, count))
            return 0
        })
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        let certificate: Certificate
        do {
            certificate = try authority.signAgentCSR(Array(input), agentID: agentID)
        } catch {
            return
        }
        do {
            let csr = try CertificateSigningRequest(derEncoded: Array(input))
            if certificate.publicKey != csr.publicKey { Fuzzer.fail("the certificate does not carry the request's key") }
            let names = certificate.subject.flatMap { $0 }.filter { $0.type == .RDNAttributeType.commonName }
            if names.count != 1 || String(names[0].value) != agentID {
                Fuzzer.fail("the certificate names \(certificate.subject), not \(agentID)")
            }
            if let constraints = try certificate.extensions.basicConstraints, constraints != .notCertificateAuthority {
                Fuzzer.fail("an agent certificate may act as a CA: \(constraints)")
            }
            let der = try CertificateEncoding.der(certificate)
            if try Certificate(derEncoded: der) != certificate { Fuzzer.fail("the issued certificate does not round-trip") }
        } catch {
            Fuzzer.fail("an issued certificate cannot be inspected: \(error)")
        }
    }

    /// Requests as agents make them (`AgentCSR.make`, ECDSA with SHA-256), on P-256 and P-384
    /// keys, and one for a name other than the one the coordinator will use.
    static func seeds() throws -> [Seed] {
        [
            Seed("p256", try AgentCSR.make(agentID: agentID, key: Certificate.PrivateKey(P256.Signing.PrivateKey()))),
            Seed("p384", try AgentCSR.make(agentID: agentID, key: Certificate.PrivateKey(P384.Signing.PrivateKey()))),
            Seed("other-name", try AgentCSR.make(agentID: "coordinator", key: Certificate.PrivateKey(P256.Signing.PrivateKey()))),
        ]
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    EnrollCSRFuzz.run(Fuzzer.bytes(data, count))
    return 0
}
