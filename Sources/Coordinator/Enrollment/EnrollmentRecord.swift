import Foundation

/// One certificate issued to an agent host (at enrollment or renewal) and what it allows:
/// a row of `enrollments`. The certificate's serial is the key; its host is its common name.
public struct EnrollmentRecord: Sendable, Equatable {
    /// Lowercase hex of the certificate's serial (`PeerCertificate.serial`).
    public var serial: String
    public var host: String
    /// The labels agents with this certificate may claim: the join token's patterns,
    /// carried over on renewal.
    public var labels: [LabelPattern]
    /// Nil for the legacy `join.token` and for certificates renewed from one enrolled
    /// before records were kept.
    public var joinTokenID: String?
    public var issuedAt: Date
    public var notAfter: Date
    /// The serial of the certificate this one renewed.
    public var renewedFrom: String?
    public var revokedAt: Date?

    public init(
        serial: String, host: String, labels: [LabelPattern], joinTokenID: String?, issuedAt: Date, notAfter: Date,
        renewedFrom: String? = nil, revokedAt: Date? = nil
    ) {
        self.serial = serial
        self.host = host
        self.labels = labels
        self.joinTokenID = joinTokenID
        self.issuedAt = issuedAt
        self.notAfter = notAfter
        self.renewedFrom = renewedFrom
        self.revokedAt = revokedAt
    }
}
