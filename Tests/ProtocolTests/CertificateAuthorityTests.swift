import Foundation
import Crypto
import GantryProtocol
import Testing
import X509

@Suite("PKI", .timeLimit(.minutes(1)))
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

    @Test func onlyTheServerCertificatePassesAsTheCoordinator() throws {
        let ca = try CertificateAuthority.create()
        let (server, _) = try ca.issueServerCertificate(
            commonName: "coord", dnsNames: ["ci.example"], ipAddresses: ["127.0.0.1", "::1"])
        #expect(EnrollmentChecks.serverCertificateProblem(server, host: "127.0.0.1") == nil)
        #expect(EnrollmentChecks.serverCertificateProblem(server, host: "::1") == nil)
        #expect(EnrollmentChecks.serverCertificateProblem(server, host: "CI.Example.") == nil)
        #expect(EnrollmentChecks.serverCertificateProblem(server, host: "evil.example") != nil)
        #expect(EnrollmentChecks.serverCertificateProblem(server, host: "127.0.0.2") != nil)
        #expect(EnrollmentChecks.serverCertificateProblem(server, host: "127.0.0.1", now: Date().addingTimeInterval(6 * 365 * 86_400)) != nil)

        // An agent's certificate, even one whose name is the coordinator's host: clientAuth
        // only and no subject alternative names, so it never passes as the server.
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let agent = try ca.signAgentCSR(try AgentCSR.make(agentID: "ci.example", key: key), agentID: "ci.example")
        #expect(try agent.extensions.subjectAlternativeNames == nil)
        #expect(try agent.extensions.extendedKeyUsage.map(Array.init) == [.clientAuth])
        let problem = try #require(EnrollmentChecks.serverCertificateProblem(agent, host: "ci.example"))
        #expect(problem.contains("serverAuth"))
        // The CA itself is not a server either.
        #expect(EnrollmentChecks.serverCertificateProblem(ca.certificate, host: "127.0.0.1") != nil)
    }

    @Test func theIssuedCertificateMustCertifyTheAgentsKeyFromThePinnedCA() throws {
        let ca = try CertificateAuthority.create()
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let issued = try ca.signAgentCSR(try AgentCSR.make(agentID: "h", key: key), agentID: "h")
        #expect(EnrollmentChecks.issuedCertificateProblem(issued, ca: ca.certificate, publicKey: key.publicKey) == nil)

        let otherKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        #expect(
            EnrollmentChecks.issuedCertificateProblem(issued, ca: ca.certificate, publicKey: otherKey.publicKey)?
                .contains("another key") == true)
        let otherCA = try CertificateAuthority.create()
        #expect(
            EnrollmentChecks.issuedCertificateProblem(issued, ca: otherCA.certificate, publicKey: key.publicKey)?
                .contains("pinned CA") == true)
        // A server certificate for the agent's key is not what enrollment hands out.
        let (server, _) = try ca.issueServerCertificate(commonName: "c", dnsNames: ["x"], ipAddresses: [])
        #expect(EnrollmentChecks.issuedCertificateProblem(server, ca: ca.certificate, publicKey: server.publicKey) != nil)
    }
}
