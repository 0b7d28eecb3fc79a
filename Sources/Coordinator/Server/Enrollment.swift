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
            guard let legacyJoinToken, Self.constantTimeEquals(request.token, legacyJoinToken) else {
                return .failure(.badToken)
            }
            token = nil
        }
        if let problem = AgentID.nameProblem(request.agentID) {
            return .failure(.badRequest("agent name '\(request.agentID.logSafe(maximum: 80))' \(problem)"))
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
            if let token {
                // The use is taken in the transaction that records the certificate: two
                // hosts racing for a single-use token cannot both get one.
                if let problem = try store.redeemJoinToken(id: token.id, now: now, recording: record) {
                    return .failure(.unusableToken(problem))
                }
            } else {
                try store.recordEnrollment(record)
            }
        } catch {
            return .failure(.storeFailed("\(error)"))
        }
        return .success(response)
    }

    /// Compares secrets without leaking their common prefix through timing.
    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = SHA256.hash(data: Data(a.utf8))
        let y = SHA256.hash(data: Data(b.utf8))
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
