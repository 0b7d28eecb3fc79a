import Foundation
import GantryProtocol

/// Why a join token that matched was not allowed to enroll the name asked for. Each
/// message says what the operator does next; the listener sends it as a fatal `BAD_TOKEN`
/// and audits it (the token was right, so this is someone answerable, not noise).
public enum EnrollmentRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The token cannot enroll anyone now (expired, revoked, used up).
    case unusableToken(String)
    /// The token is bound to another host name.
    case boundToAnotherHost(tokenID: String, boundTo: String, requested: String)
    /// The name has a certificate that is neither revoked nor expired, valid until `until`.
    case hostEnrolled(host: String, until: Date)
    /// The name was forgotten (`gantry agents forget`) at `at`.
    case hostForgotten(host: String, at: Date)

    public var description: String {
        switch self {
        case .unusableToken(let why):
            return why
        case .boundToAnotherHost(let tokenID, let boundTo, let requested):
            let bound = boundTo.logSafe(maximum: 64)
            let asked = requested.logSafe(maximum: 64)
            return "join token \(tokenID) enrolls host \(bound) only, not \(asked): enroll with --name \(bound), or create a "
                + "join token for \(asked) with `gantry-coordinator join-token create --name \(asked)`"
        case .hostEnrolled(let host, let until):
            let name = host.logSafe(maximum: 64)
            return "host \(name) is already enrolled (its certificate is valid until \(until.formatted(.iso8601))): choose "
                + "another --name, or, if this is that host rebuilt, forget the old one (`gantry agents forget \(name)`) "
                + "and enroll with a join token for it: `gantry-coordinator join-token create --name \(name)`"
        case .hostForgotten(let host, let at):
            let name = host.logSafe(maximum: 64)
            return "host \(name) was forgotten (`gantry agents forget`, \(at.formatted(.iso8601))): to bring it back, "
                + "enroll it with a join token for it: `gantry-coordinator join-token create --name \(name)`"
        }
    }
}

extension TrustPolicy {
    /// Whether `token` (nil: the legacy `join.token`) may enroll `host`, given when the
    /// name's live certificates expire (`liveUntil`: the latest `not_after` of its records
    /// neither revoked nor expired, nil if none) and when it was forgotten (`forgottenAt`).
    ///
    /// A name already in use is a claim on its jobs: an agent connecting as `deploy-1/0`
    /// resumes the attempts `deploy-1/0` held. So only a token bound to exactly that name
    /// (made on purpose by an operator for that host) may enroll it again, and a bound
    /// token enrolls nothing else. A forgotten name stays forgotten for every other token:
    /// otherwise enrolling it again would undo the forget.
    ///
    /// A certificate issued before enrollment records were kept has no row, so a name
    /// held only by such a certificate looks free here and any token can enroll it; those
    /// certificates expire (or can be revoked with `gantry agents forget`, which covers
    /// them through `revoked_hosts`).
    public static func enrollmentRefusal(
        host: String, token: JoinToken?, liveUntil: Date?, forgottenAt: Date?
    ) -> EnrollmentRefusal? {
        if let token, let bound = token.host {
            return bound == host ? nil : .boundToAnotherHost(tokenID: token.id, boundTo: bound, requested: host)
        }
        if let forgottenAt { return .hostForgotten(host: host, at: forgottenAt) }
        if let liveUntil { return .hostEnrolled(host: host, until: liveUntil) }
        return nil
    }
}
