import Crypto
import Foundation
@testable import GantryAgent
import GantryProtocol
import Testing
import X509

/// The agent's side of renewal: when it is due, how a renewed pair is installed so that
/// no reader or crash finds a key without its certificate, and that one slot renews at a
/// time.
@Suite("Certificate renewal (agent)", .serialized, .timeLimit(.minutes(1)))
final class CertificateRenewalTests {
    let root = NSTemporaryDirectory() + "gantry-renewal-\(UUID().uuidString)"
    let ca: CertificateAuthority
    let state: AgentStateDirectory

    init() throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        ca = try CertificateAuthority.create()
        state = AgentStateDirectory(path: root)
        try SecureFile.write(try CertificateEncoding.pem(ca.certificate), to: state.caCertificate, mode: 0o644)
        try SecureFile.write(#"{"name":"h","coordinator":"127.0.0.1:1"}"#, to: state.metadata, mode: 0o644)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// A certificate for `h` valid for `validity` seconds from `now` (backdated 5 minutes, as the CA does).
    func issue(validity: TimeInterval, now: Date = Date()) throws -> (Certificate, Certificate.PrivateKey) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        return (try ca.signAgentCSR(try AgentCSR.make(agentID: "h", key: key), agentID: "h", validity: validity, now: now), key)
    }

    func install(_ pair: (Certificate, Certificate.PrivateKey)) throws {
        try SecureFile.write(try CertificateEncoding.pem(pair.1), to: state.privateKey)
        try SecureFile.write(try CertificateEncoding.pem(pair.0), to: state.certificate, mode: 0o644)
    }

    @Test func renewalIsDueAfterTwoThirdsOfTheValidity() {
        let schedule = RenewalSchedule()
        let issued = Date(timeIntervalSince1970: 1_700_000_000)
        // As issued: five minutes backdated, 30 days ahead.
        let notBefore = issued.addingTimeInterval(-300)
        let notAfter = issued.addingTimeInterval(30 * 86_400)
        let due = schedule.dueDate(notBefore: notBefore, notAfter: notAfter)
        #expect(abs(due.timeIntervalSince(notBefore) - (30 * 86_400 + 300) * 2 / 3) < 0.001)
        #expect(!schedule.isDue(notBefore: notBefore, notAfter: notAfter, now: issued.addingTimeInterval(19 * 86_400)))
        #expect(schedule.isDue(notBefore: notBefore, notAfter: notAfter, now: issued.addingTimeInterval(20 * 86_400)))
        #expect(schedule.isDue(notBefore: notBefore, notAfter: notAfter, now: notAfter.addingTimeInterval(1)))
        // Nonsense in, a sane answer out: a certificate that ends before it starts is due.
        #expect(schedule.isDue(notBefore: notAfter, notAfter: notBefore, now: notAfter))
        #expect(RenewalSchedule(fraction: .nan).fraction == RenewalSchedule.defaultFraction)
        #expect(RenewalSchedule(fraction: 7).fraction == 1)
    }

    @Test func aRenewedPairIsReadWholeEvenBetweenItsRenames() throws {
        let old = try issue(validity: 3600)
        try install(old)
        #expect(try state.tlsConfiguration().certificate == old.0)
        let renewed = try issue(validity: 7200)
        try state.installRenewed(certificate: renewed.0, privateKey: renewed.1)
        #expect(try state.tlsConfiguration().certificate == renewed.0)
        #expect(!FileManager.default.fileExists(atPath: state.nextCertificate))
        #expect(!FileManager.default.fileExists(atPath: state.nextPrivateKey))

        // Stopped between the two renames: the new key is in place, its certificate is
        // still agent.next.pem; the pair is found.
        let third = try issue(validity: 7200)
        try SecureFile.write(try CertificateEncoding.pem(third.1), to: state.privateKey)
        try SecureFile.write(try CertificateEncoding.pem(third.0), to: state.nextCertificate, mode: 0o644)
        #expect(try state.tlsConfiguration().certificate == third.0)

        // A key with no certificate anywhere is refused with what to do.
        try FileManager.default.removeItem(atPath: state.nextCertificate)
        #expect(throws: AgentError.identityMismatch(root)) { try self.state.tlsConfiguration() }
        #expect(AgentError.identityMismatch(root).description.contains("gantry-agent enroll"))
    }

    @Test func oneSlotRenewsAtATime() throws {
        let first = try #require(RenewalLock(path: state.renewalLock))
        #expect(RenewalLock(path: state.renewalLock) == nil)
        first.release()
        #expect(RenewalLock(path: state.renewalLock) != nil)
    }

    @Test func theRenewerAsksWhenDueAndInstallsWhatIsValid() throws {
        // Valid 400 s, backdated 300 s: three quarters used, due now.
        try install(try issue(validity: 100))
        var renewer = CertificateRenewer(state: state, name: "h")
        let request = try #require(try renewer.request(now: Date(), instant: .now, newConnection: true))
        // One renewal in flight at a time, and the lock is held meanwhile.
        #expect(try renewer.request(now: Date(), instant: .now, newConnection: true) == nil)
        #expect(RenewalLock(path: state.renewalLock) == nil)

        // A certificate for another key is not installed.
        let (stranger, _) = try issue(validity: 3600)
        let strangerDER = Data(try CertificateEncoding.der(stranger))
        let refused = renewer.received(.with { $0.certificateDer = strangerDER }, now: Date())
        guard case .refused(let why) = refused else {
            Issue.record("a certificate for another key must be refused")
            return
        }
        #expect(why.contains("another key"))
        #expect(RenewalLock(path: state.renewalLock) != nil)

        // Asked again (a new connection), answered properly: installed.
        let again = try #require(try renewer.request(now: Date(), instant: .now, newConnection: true))
        let signed = try ca.signAgentCSR(Array(again.csrDer), agentID: "h", validity: 30 * 86_400)
        let signedDER = Data(try CertificateEncoding.der(signed))
        let outcome = renewer.received(.with { $0.certificateDer = signedDER }, now: Date())
        #expect(outcome == .installed(notAfter: signed.notValidAfter))
        #expect(try state.tlsConfiguration().certificate == signed)
        // Fresh now: nothing more to ask, on this connection or the next.
        #expect(try renewer.request(now: Date(), instant: .now, newConnection: true) == nil)
        #expect(!request.csrDer.isEmpty)

    }

    @Test func aSlotThatFindsTheCertificateRenewedByAnotherAsksNothing() throws {
        try install(try issue(validity: 100))
        var slow = CertificateRenewer(state: state, name: "h")
        // Another slot is renewing: this one reads the (due) certificate and waits its turn.
        let other = try #require(RenewalLock(path: state.renewalLock))
        #expect(try slow.request(now: Date(), instant: .now, newConnection: true) == nil)
        let fresh = try issue(validity: 30 * 86_400)
        try state.installRenewed(certificate: fresh.0, privateKey: fresh.1)
        other.release()
        // Its next connection re-reads the files under the lock: nothing is due any more.
        #expect(try slow.request(now: Date(), instant: .now, newConnection: true) == nil)
        #expect(RenewalLock(path: state.renewalLock) != nil)
        #expect(try state.tlsConfiguration().certificate == fresh.0)
    }

    @Test func refusalsAboutLabelsAndRevocationArePermanent() {
        for code in [Gantry_V1_ErrorCode.labelNotAllowed, .certificateRevoked] {
            #expect(AgentError.handshake(.with { $0.code = code; $0.message = "m" }) == .handshakeRefused("m"))
        }
        #expect(AgentError.handshake(.with { $0.code = .internal; $0.message = "m" }) == .connectionClosed("m"))
    }
}
