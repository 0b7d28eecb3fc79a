import Crypto
import GantryProtocol
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The agent's side of certificate renewal: when the host's certificate is due
/// (`RenewalSchedule`: two thirds of its validity passed), a new key and a CSR for it go
/// out as `RenewRequest`; the certificate that comes back is checked like the one from
/// enrollment and installed with its key (`AgentStateDirectory.installRenewed`). The
/// connection in use keeps the old pair; the next one uses the new.
///
/// At most one slot of a host renews at a time (`RenewalLock`, held from the request to the
/// answer or the end of the connection), and one that finds the certificate on disk
/// already renewed by another slot asks nothing. Not thread-safe: the `AgentRuntime` actor
/// owns it.
struct CertificateRenewer {
    let state: AgentStateDirectory
    let name: String
    let schedule: RenewalSchedule
    /// While connected, a failed or skipped renewal is tried again after this.
    static let retryInterval: Duration = .seconds(3600)

    /// The validity of the certificate last read from disk (the one connections use).
    private var validity: (notBefore: Date, notAfter: Date)?
    private var pending: (key: Certificate.PrivateKey, lock: RenewalLock)?
    private var lastAttempt: ContinuousClock.Instant?

    init(state: AgentStateDirectory, name: String, schedule: RenewalSchedule = RenewalSchedule()) {
        self.state = state
        self.name = name
        self.schedule = schedule
    }

    enum Outcome: Equatable {
        case installed(notAfter: Date)
        case refused(String)
    }

    /// The request to send now, or nil. `newConnection`: the coordinator just welcomed us
    /// (each connection may try once; otherwise once per `retryInterval`).
    mutating func request(now: Date, instant: ContinuousClock.Instant, newConnection: Bool) throws -> Gantry_V1_RenewRequest? {
        guard pending == nil else { return nil }
        if !newConnection, let lastAttempt, instant - lastAttempt < Self.retryInterval { return nil }
        if validity == nil { try reload() }
        guard let validity, schedule.isDue(notBefore: validity.notBefore, notAfter: validity.notAfter, now: now) else {
            return nil
        }
        lastAttempt = instant
        guard let lock = RenewalLock(path: state.renewalLock) else { return nil }
        // Another slot may have renewed since this process read the certificate.
        try reload()
        guard let current = self.validity, schedule.isDue(notBefore: current.notBefore, notAfter: current.notAfter, now: now)
        else {
            lock.release()
            return nil
        }
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let csr: [UInt8]
        do {
            csr = try AgentCSR.make(agentID: name, key: key)
        } catch {
            lock.release()
            throw error
        }
        pending = (key, lock)
        return .with { $0.csrDer = Data(csr) }
    }

    /// The coordinator's answer. Nil if no renewal was pending on this connection.
    mutating func received(_ response: Gantry_V1_RenewResponse, now: Date) -> Outcome? {
        guard let (key, lock) = pending.map({ ($0.key, $0.lock) }) else { return nil }
        pending = nil
        defer { lock.release() }
        guard response.error.isEmpty else {
            return .refused(CoordinatorValueChecks.loggable(response.error))
        }
        do {
            let certificate = try Certificate(derEncoded: Array(response.certificateDer))
            let ca = try CertificateEncoding.readCertificate(pemFile: state.caCertificate)
            if let problem = EnrollmentChecks.issuedCertificateProblem(certificate, ca: ca, publicKey: key.publicKey, now: now) {
                return .refused("not installing what the coordinator sent: \(problem)")
            }
            guard PeerCertificate(certificate)?.name == name else {
                return .refused("not installing what the coordinator sent: the certificate is not for '\(name)'")
            }
            try state.installRenewed(certificate: certificate, privateKey: key)
            validity = (certificate.notValidBefore, certificate.notValidAfter)
            return .installed(notAfter: certificate.notValidAfter)
        } catch {
            return .refused("could not install the renewed certificate: \(error)")
        }
    }

    /// The connection ended: a request in flight will never be answered on it.
    mutating func connectionLost() {
        pending?.lock.release()
        pending = nil
    }

    private mutating func reload() throws {
        let identity = try state.tlsConfiguration()
        validity = (identity.certificate.notValidBefore, identity.certificate.notValidAfter)
    }
}
