import Crypto
import GantryProtocol
import Testing
import X509

@Suite("PKI")
struct CertificateAuthorityTests {
    @Test func signsAgentCSRWithTheChosenName() throws {
        let ca = try CertificateAuthority.create()
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let csr = try AgentCSR.make(agentID: "whatever-the-agent-asked", key: key)
        let certificate = try ca.signAgentCSR(csr, agentID: "build-7")
        #expect(certificate.publicKey == key.publicKey)
        #expect(ca.certificate.publicKey.isValidSignature(certificate.signature, for: certificate))
        #expect("\(certificate.subject)".contains("build-7"))
        let usage = try #require(try certificate.extensions.extendedKeyUsage)
        #expect(usage.contains(.clientAuth))
        #expect(!usage.contains(.serverAuth))
    }

    @Test func rejectsGarbageCSR() throws {
        let ca = try CertificateAuthority.create()
        #expect(throws: PKIError.self) {
            try ca.signAgentCSR([1, 2, 3], agentID: "x")
        }
    }

    @Test func serverCertificateCarriesItsNames() throws {
        let ca = try CertificateAuthority.create()
        let (certificate, _) = try ca.issueServerCertificate(
            commonName: "coord", dnsNames: ["localhost", "ci.example"], ipAddresses: ["127.0.0.1", "::1"])
        let names = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(names.contains(.dnsName("ci.example")))
        #expect(names.count == 4)
        #expect(throws: PKIError.invalidAddress("not-an-ip")) {
            try ca.issueServerCertificate(commonName: "c", dnsNames: [], ipAddresses: ["not-an-ip"])
        }
    }

    @Test func fingerprintIsStableAndPrefixed() throws {
        let ca = try CertificateAuthority.create()
        let a = try CertificateEncoding.fingerprint(ca.certificate)
        #expect(a == (try CertificateEncoding.fingerprint(ca.certificate)))
        #expect(a.hasPrefix("sha256:") && a.count == 7 + 64)
    }
}
