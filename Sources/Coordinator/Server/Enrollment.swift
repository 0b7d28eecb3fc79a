import Crypto
import Foundation
import GantryProtocol
import X509

/// Turns a join token and a CSR into an agent certificate signed by the Gantry CA, and
/// records what that certificate allows (`EnrollmentRecord`).
///
/// Two kinds of token: the legacy `join.token` file made by `init` (unrestricted: `*`,
/// which never grants a trusted label key) and the tokens of `gantry-coordinator
/// join-token create` in the store (their label patterns, expiry and uses). The store is
/// read at every enrollment, so a token created or revoked while the coordinator runs
/// counts at once. Runs on the enrolling connection's task, never on the core's actor.
///
/// A name is not first come, first served forever: a name with a live certificate or one
/// that was forgotten is enrolled again only with a token bound to it (`join-token create
/// --name`), checked in the transaction that records the certificate
/// (`TrustPolicy.enrollmentRefusal`). Certificates issued before enrollment records were
/// kept leave no row, so a name held only by one of those is not detected as taken.
public struct Enrollment: Sendable {
    public let authority: CertificateAuthority
    /// The `join.token` file's value; nil disables it.
    public let legacyJoinToken: String?
    public let store: any EnrollmentStore
    /// How long the certificates issued here are valid (`serve --agent-certificate-days`).
    public let certificateValidity: TimeInterval

    public init(
        authority: CertificateAuthority, legacyJoinToken: String?, store: any EnrollmentStore,
        certificateValidity: TimeInterval = CertificateAuthority.defaultAgentCertificateValidity
    ) {
        self.authority = authority
        self.legacyJoinToken = legacyJoinToken
        self.store = store
        self.certificateValidity = certificateValidity
    }

    public enum Failure: Error, Equatable {
        /// No token has this secret.
        case badToken
        /// The token is right but cannot enroll any more (expired, revoked, used up): the
        /// message says which.
        case unusableToken(String)
        /// The token may not enroll this name (taken, forgotten, or the token is bound to
        /// another): the refusal says what to do.
        case nameRefused(EnrollmentRefusal)
        case badRequest(String)
        /// The store failed; the agent may try again.
        case storeFailed(String)
    }

    public func enroll(_ request: Gantry_V1_EnrollRequest, now: Date = Date()) -> Result<Gantry_V1_EnrollResponse, Failure> {
        // Which token: one from the store (found by the id its secret starts with), or
        // the legacy file. Either way the secret is compared as SHA-256 digests in
        // constant time.
        let token: JoinToken?
        if let id = JoinToken.id(inSecret: request.token) {
            do {
                guard let stored = try store.joinToken(id: id), stored.matches(secret: request.token) else {
                    return .failure(.badToken)
                }
                if let problem = stored.problem(now: now) { return .failure(.unusableToken(problem)) }
                token = stored
            } catch {
                return .failure(.storeFailed("\(error)"))
            }
        } else {
            guard let legacyJoinToken, SecretDigest.equal(secret: request.token, legacyJoinToken) else {
                return .failure(.badToken)
            }
            token = nil
        }
        if let problem = AgentID.nameProblem(request.agentID) {
            return .failure(.badRequest("agent name '\(request.agentID.logSafe(maximum: 80))' \(problem)"))
        }
        // A token bound to another name is refused before anything is signed; whether the
        // name is taken is decided in the transaction below, where it cannot change.
        if let token, let bound = token.host, bound != request.agentID {
            return .failure(.nameRefused(.boundToAnotherHost(tokenID: token.id, boundTo: bound, requested: request.agentID)))
        }
        let certificate: Certificate
        let response: Gantry_V1_EnrollResponse
        do {
            certificate = try authority.signAgentCSR(
                Array(request.csrDer), agentID: request.agentID, validity: certificateValidity, now: now)
            let der = try CertificateEncoding.der(certificate)
            let caDER = try CertificateEncoding.der(authority.certificate)
            response = .with {
                $0.certificateDer = Data(der)
                $0.caCertificateDer = Data(caDER)
            }
        } catch {
            return .failure(.badRequest("\(error)"))
        }
        let record = EnrollmentRecord(
            serial: PeerCertificate.serial(of: certificate), host: request.agentID,
            labels: token?.labels ?? TrustPolicy.unrestricted, joinTokenID: token?.id, issuedAt: now,
            notAfter: certificate.notValidAfter)
        do {
            // The use is taken, and the name checked, in the transaction that records the
            // certificate: two hosts racing for a single-use token or for one name cannot
            // both get one.
            let refusal =
                if let token {
                    try store.redeemJoinToken(id: token.id, now: now, recording: record)
                } else {
                    try store.recordEnrollment(record, now: now)
                }
            switch refusal {
            case nil: break
            case .unusableToken(let problem)?: return .failure(.unusableToken(problem))
            case let other?: return .failure(.nameRefused(other))
            }
        } catch {
            return .failure(.storeFailed("\(error)"))
        }
        return .success(response)
    }

}
