import Foundation
import GantryProtocol

/// The coordinator's decisions about an enrolled host, as pure functions: may this
/// `Hello` claim these labels, and is this certificate revoked.
///
/// Labels decide which jobs an agent receives, and some of them are promises
/// (`queue=deploy`: this host may hold production credentials). The keys in
/// `trustedKeys` are those promises: an agent may claim one only if the join token it was
/// enrolled with named it. Every other key is allowed by `*`. The listener applies this
/// on the connection's task, before the core hears of the `Hello`.
public struct TrustPolicy: Sendable, Equatable {
    /// `queue` selects where deploy and release jobs run.
    public static let defaultTrustedKeys: Set<String> = ["queue"]

    public var trustedKeys: Set<String>

    public init(trustedKeys: Set<String> = TrustPolicy.defaultTrustedKeys) {
        self.trustedKeys = trustedKeys
    }

    /// What an enrollment allows when there is no record of it: a certificate issued
    /// before enrollments were recorded, or by the legacy `join.token`. Never a trusted key.
    public static let unrestricted: [LabelPattern] = [.anyUntrusted]

    /// A refusal: the wire's error code and a message that says what to do.
    public struct Refusal: Sendable, Equatable, Error {
        public var code: Gantry_V1_ErrorCode
        public var message: String
    }

    /// The first claimed label (in key order) that no pattern allows, or nil if every one is.
    public func refusedLabel(_ claimed: [String: String], allowedBy patterns: [LabelPattern]) -> (key: String, value: String)? {
        for (key, value) in claimed.sorted(by: { $0.key < $1.key })
        where !patterns.contains(where: { $0.allows(key: key, value: value, trustedKeys: trustedKeys) }) {
            return (key, value)
        }
        return nil
    }

    /// Nil if host `host` may claim `claimed` under `patterns`, else the refusal naming the
    /// label and how to get it allowed.
    public func labelRefusal(host: String, claimed: [String: String], allowedBy patterns: [LabelPattern]) -> Refusal? {
        guard let (key, value) = refusedLabel(claimed, allowedBy: patterns) else { return nil }
        let label = "\(key)=\(value)".logSafe(maximum: 120)
        let allowed = patterns.isEmpty ? "no labels" : Self.describe(patterns)
        let why =
            trustedKeys.contains(key)
            ? "`\(key.logSafe(maximum: 64))` is a trusted label key, which only a join token naming it can grant"
            : "no pattern of its enrollment matches it"
        return Refusal(
            code: .labelNotAllowed,
            message: "label \(label) is not allowed for host '\(host.logSafe(maximum: 64))': \(why) (its enrollment allows "
                + "\(allowed)). Remove it from --labels, or enroll this host again with a join token that allows it: "
                + "`gantry-coordinator join-token create --labels \(label)`, then `gantry-agent enroll --token ...`")
    }

    /// Nil if the certificate is not revoked, else why it is.
    ///
    /// `enrollment` is the certificate's record (nil: issued before records were kept);
    /// `hostRevokedAt` is when its host was last forgotten. A recorded certificate is
    /// revoked if its record says so or its host was forgotten at or after it was issued
    /// (a certificate issued after a forget, by enrolling again, is the host's new
    /// identity). One without a record is revoked whenever its host was forgotten: nothing
    /// says it is newer.
    public static func revocation(host: String, enrollment: EnrollmentRecord?, hostRevokedAt: Date?) -> Refusal? {
        let revokedAt: Date?
        if let enrollment {
            if let at = enrollment.revokedAt {
                revokedAt = at
            } else if let at = hostRevokedAt, at >= enrollment.issuedAt {
                revokedAt = at
            } else {
                revokedAt = nil
            }
        } else {
            revokedAt = hostRevokedAt
        }
        guard let revokedAt else { return nil }
        return Refusal(
            code: .certificateRevoked,
            message: "the certificate of host '\(host.logSafe(maximum: 64))' was revoked (`gantry agents forget`, "
                + "\(revokedAt.formatted(.iso8601))): it will not be accepted again. To bring this host back, enroll it "
                + "again with a new join token (`gantry-agent enroll`)")
    }

    /// At most eight patterns, so a message stays short whatever a token allows.
    static func describe(_ patterns: [LabelPattern]) -> String {
        let shown = patterns.prefix(8).map { $0.description.logSafe(maximum: 80) }.joined(separator: ", ")
        return patterns.count > 8 ? shown + ", … (\(patterns.count) patterns)" : shown
    }
}
