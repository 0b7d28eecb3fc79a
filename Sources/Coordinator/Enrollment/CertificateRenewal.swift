import Foundation
import GantryProtocol
import Synchronization
import X509

/// Issues a new certificate to a connected agent host (`RenewRequest`), for the host its
/// current certificate names and with the same enrollment (allowed labels), unless that
/// certificate is revoked. Runs on the connection's task, never on the core's actor.
///
/// Renewal is what keeps a certificate alive, so it is also what a stolen key would use
/// to outlive the certificate's 30 days. Two limits give a thief a deadline and keep a host
/// from minting certificates: a renewal is accepted only inside the renewal window
/// (`schedule`, the agent's own: two thirds of the validity used), and at most once per
/// host per `minimumInterval`, whichever connection asks (a host may open many slots).
public struct CertificateRenewal: Sendable {
    public let authority: CertificateAuthority
    public let store: any EnrollmentStore
    public let certificateValidity: TimeInterval
    /// When a certificate may be renewed: the same schedule agents follow, so an agent
    /// never asks before the coordinator would agree (short test certificates,
    /// `serve --agent-certificate-seconds`, are due as soon as they are issued).
    public let schedule: RenewalSchedule
    /// Shared by every copy of this value: the listener's connections all use one.
    let recent: HostRenewalLimiter

    /// One renewal per host, and one request per connection, per this interval: an agent
    /// asks once per connection (and once an hour while connected), so more is a peer
    /// making the coordinator sign.
    public static let minimumInterval: Duration = .seconds(60)

    public init(
        authority: CertificateAuthority, store: any EnrollmentStore,
        certificateValidity: TimeInterval = CertificateAuthority.defaultAgentCertificateValidity,
        schedule: RenewalSchedule = RenewalSchedule()
    ) {
        self.authority = authority
        self.store = store
        self.certificateValidity = certificateValidity
        self.schedule = schedule
        self.recent = HostRenewalLimiter(interval: Self.minimumInterval)
    }

    /// A certificate issued by a renewal.
    public struct Renewed: Sendable, Equatable {
        public var certificateDER: [UInt8]
        public var serial: String
        public var notAfter: Date
    }

    /// Why a renewal was refused; `description` is what the agent is told, and says what
    /// to do next. The agent keeps its current certificate either way.
    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// Less than the schedule's share of the certificate's validity has passed.
        case notDue(dueAt: Date)
        /// This host was issued a certificate less than `minimumInterval` ago, on some connection.
        case renewedRecently(host: String)
        /// This connection asked less than `minimumInterval` ago.
        case askedAgainOnConnection
        /// So many hosts renewed within the interval that the limiter is full.
        case busy
        /// The certificate's record names another host.
        case otherHost
        /// The certificate is revoked (`gantry agents forget`): the policy's message.
        case revoked(String)
        /// The CSR could not be signed.
        case badRequest(String)
        /// The store could not be read or written.
        case storeFailed

        public var description: String {
            switch self {
            case .notDue(let dueAt):
                return "renewal refused: this certificate is not due for renewal until \(dueAt.formatted(.iso8601)) "
                    + "(two thirds of its validity); keep using it and ask again then"
            case .renewedRecently(let host):
                return "renewal refused: host \(host.logSafe(maximum: 64)) was issued a certificate less than "
                    + "\(CertificateRenewal.minimumInterval) ago: reconnect to use it, or ask again later"
            case .askedAgainOnConnection:
                return "renewal asked again within \(CertificateRenewal.minimumInterval) on one connection: try later"
            case .busy:
                return "renewal refused: the coordinator is renewing too many certificates right now: try again later"
            case .otherHost:
                return "this certificate's enrollment record names another host: enroll this host again"
            case .revoked(let message):
                return message
            case .badRequest(let why):
                return "renewal refused: \(why)".logSafe(maximum: 1024)
            case .storeFailed:
                return "the coordinator could not read or record this host's enrollment: try again later"
            }
        }

        /// A short machine-readable reason, for the audit log.
        public var reason: String {
            switch self {
            case .notDue: return "not_due"
            case .renewedRecently: return "renewed_recently"
            case .askedAgainOnConnection: return "asked_again_on_connection"
            case .busy: return "busy"
            case .otherHost: return "other_host"
            case .revoked: return "revoked"
            case .badRequest: return "bad_request"
            case .storeFailed: return "store_failed"
            }
        }
    }

    /// The renewal `request` from the holder of `peer` at `now` (`instant` on the
    /// monotonic clock, for the per-host interval).
    public func renew(
        _ request: Gantry_V1_RenewRequest, peer: PeerCertificate, now: Date = Date(),
        instant: ContinuousClock.Instant = .now
    ) -> Result<Renewed, Refusal> {
        guard schedule.isDue(notBefore: peer.notValidBefore, notAfter: peer.notValidAfter, now: now) else {
            return .failure(.notDue(dueAt: schedule.dueDate(notBefore: peer.notValidBefore, notAfter: peer.notValidAfter)))
        }
        let previous: EnrollmentRecord?
        let hostRevokedAt: Date?
        do {
            previous = try store.enrollment(serial: peer.serial)
            hostRevokedAt = try store.hostRevokedAt(peer.name)
        } catch {
            return .failure(.storeFailed)
        }
        if let previous, previous.host != peer.name { return .failure(.otherHost) }
        // Checked here for the message (a revoked certificate is told so, not "too soon");
        // `recordRenewal` checks again in the transaction that records the new one.
        if let refusal = TrustPolicy.revocation(host: peer.name, enrollment: previous, hostRevokedAt: hostRevokedAt) {
            return .failure(.revoked(refusal.message))
        }
        switch recent.reserve(peer.name, at: instant) {
        case .reserved: break
        case .tooSoon: return .failure(.renewedRecently(host: peer.name))
        case .full: return .failure(.busy)
        }
        // Nothing issued: give the interval back, so a transient failure does not make
        // the host wait a minute.
        let refuse = { (refusal: Refusal) -> Result<Renewed, Refusal> in
            recent.release(peer.name, reservedAt: instant)
            return .failure(refusal)
        }
        let certificate: Certificate
        let der: [UInt8]
        do {
            certificate = try authority.signAgentCSR(
                Array(request.csrDer), agentID: peer.name, validity: certificateValidity, now: now)
            der = try CertificateEncoding.der(certificate)
        } catch {
            return refuse(.badRequest("\(error)"))
        }
        let serial = PeerCertificate.serial(of: certificate)
        let record = EnrollmentRecord(
            serial: serial, host: peer.name, labels: previous?.labels ?? TrustPolicy.unrestricted,
            joinTokenID: previous?.joinTokenID, issuedAt: now, notAfter: certificate.notValidAfter, renewedFrom: peer.serial)
        do {
            if let refusal = try store.recordRenewal(record) { return refuse(.revoked(refusal.message)) }
        } catch {
            return refuse(.storeFailed)
        }
        return .success(Renewed(certificateDER: der, serial: serial, notAfter: certificate.notValidAfter))
    }

    /// The wire answer to a renewal's result.
    public static func response(_ result: Result<Renewed, Refusal>) -> Gantry_V1_RenewResponse {
        switch result {
        case .success(let renewed): return .with { $0.certificateDer = Data(renewed.certificateDER) }
        case .failure(let refusal): return .with { $0.error = refusal.description }
        }
    }
}

/// When each host was last issued a certificate by renewal, on the monotonic clock: at
/// most one per host per `interval`, across connections. Bounded: at `capacity` hosts it
/// drops the entries older than the interval, and refuses (`full`) while every one is
/// recent, rather than forget a host that did renew.
final class HostRenewalLimiter: Sendable {
    enum Decision: Equatable {
        case reserved
        case tooSoon
        case full
    }

    let interval: Duration
    let capacity: Int
    private let last = Mutex<[String: ContinuousClock.Instant]>([:])

    init(interval: Duration, capacity: Int = 10_000) {
        self.interval = interval
        self.capacity = capacity
    }

    /// Takes `host`'s slot at `instant` unless it was taken less than `interval` before.
    func reserve(_ host: String, at instant: ContinuousClock.Instant) -> Decision {
        last.withLock { last in
            if let previous = last[host] {
                // A negative difference is a reservation made just after ours was read: too soon too.
                if instant - previous < interval { return .tooSoon }
            } else if last.count >= capacity {
                last = last.filter { instant - $0.value < interval }
                if last.count >= capacity { return .full }
            }
            last[host] = instant
            return .reserved
        }
    }

    /// Gives back the reservation made at `instant`, if it is still the host's latest.
    func release(_ host: String, reservedAt instant: ContinuousClock.Instant) {
        last.withLock { last in
            if last[host] == instant { last[host] = nil }
        }
    }
}
