import Foundation
import GantryProtocol

/// The trust check of every `Hello`, run by the listener on the connection's task before
/// the core hears of it: is the peer's certificate revoked, and may it claim the labels
/// it announces. Two point reads (`enrollments` by serial, `revoked_hosts` by host), then
/// `TrustPolicy`'s pure decisions.
public struct HelloAdmission: Sendable {
    public let store: any EnrollmentStore
    public let policy: TrustPolicy

    public init(store: any EnrollmentStore, policy: TrustPolicy = TrustPolicy()) {
        self.store = store
        self.policy = policy
    }

    /// Nil to let the `Hello` through, else the fatal refusal to send. A store that cannot
    /// answer refuses (non-fatally for the agent: `INTERNAL`, it reconnects): trust is
    /// never granted by default.
    public func refusal(for hello: Gantry_V1_Hello, peer: PeerCertificate) -> TrustPolicy.Refusal? {
        let enrollment: EnrollmentRecord?
        let hostRevokedAt: Date?
        do {
            enrollment = try store.enrollment(serial: peer.serial)
            hostRevokedAt = try store.hostRevokedAt(peer.name)
        } catch {
            return TrustPolicy.Refusal(
                code: .internal, message: "the coordinator could not read this host's enrollment: try again later")
        }
        // A record of another host under this serial cannot happen with one CA; refuse
        // rather than apply someone else's labels.
        if let enrollment, enrollment.host != peer.name {
            return TrustPolicy.Refusal(
                code: .certificateRevoked,
                message: "this certificate's enrollment record names another host: enroll this host again")
        }
        if let revoked = TrustPolicy.revocation(host: peer.name, enrollment: enrollment, hostRevokedAt: hostRevokedAt) {
            return revoked
        }
        return policy.labelRefusal(
            host: peer.name, claimed: hello.labels, allowedBy: enrollment?.labels ?? TrustPolicy.unrestricted)
    }
}
