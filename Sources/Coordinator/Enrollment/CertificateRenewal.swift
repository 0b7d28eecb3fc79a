import Foundation
import GantryProtocol
import X509

/// Issues a new certificate to a connected agent host (`RenewRequest`), for the host its
/// current certificate names and with the same enrollment (allowed labels), unless that
/// certificate is revoked. Runs on the connection's task, never on the core's actor.
public struct CertificateRenewal: Sendable {
    public let authority: CertificateAuthority
    public let store: any EnrollmentStore
    public let certificateValidity: TimeInterval

    /// One renewal per connection per this interval: an agent asks once per connection
    /// (and once an hour while connected), so more is a peer making the coordinator sign.
    public static let minimumInterval: Duration = .seconds(60)

    public init(
        authority: CertificateAuthority, store: any EnrollmentStore,
        certificateValidity: TimeInterval = CertificateAuthority.defaultAgentCertificateValidity
    ) {
        self.authority = authority
        self.store = store
        self.certificateValidity = certificateValidity
    }

    /// The answer to `request` from the holder of `peer`: the certificate, or `error` set.
    public func renew(_ request: Gantry_V1_RenewRequest, peer: PeerCertificate, now: Date = Date()) -> Gantry_V1_RenewResponse {
        let previous: EnrollmentRecord?
        do {
            previous = try store.enrollment(serial: peer.serial)
        } catch {
            return .with { $0.error = "the coordinator could not read this host's enrollment: try again later" }
        }
        if let previous, previous.host != peer.name {
            return .with { $0.error = "this certificate's enrollment record names another host: enroll this host again" }
        }
        let certificate: Certificate
        let der: [UInt8]
        do {
            certificate = try authority.signAgentCSR(
                Array(request.csrDer), agentID: peer.name, validity: certificateValidity, now: now)
            der = try CertificateEncoding.der(certificate)
        } catch {
            return .with { $0.error = "renewal refused: \(error)".logSafe(maximum: 1024) }
        }
        let record = EnrollmentRecord(
            serial: PeerCertificate.serial(of: certificate), host: peer.name,
            labels: previous?.labels ?? TrustPolicy.unrestricted, joinTokenID: previous?.joinTokenID, issuedAt: now,
            notAfter: certificate.notValidAfter, renewedFrom: peer.serial)
        do {
            if let refusal = try store.recordRenewal(record) {
                return .with { $0.error = refusal.message }
            }
        } catch {
            return .with { $0.error = "the coordinator could not record the renewal: try again later" }
        }
        return .with { $0.certificateDer = Data(der) }
    }
}
