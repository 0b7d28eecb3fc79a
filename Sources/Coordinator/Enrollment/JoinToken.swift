import Foundation
import GantryProtocol

/// A join token kept in the store: what agents enrolled with it may claim, until when, how
/// many times. The secret itself is shown once, when it is created, and never stored: the
/// store keeps its SHA-256 only, so a copy of the database enrolls nobody.
///
/// The secret is `<id>.<64 hex digits>` (`jt_1a2b3c4d.9f…`): the id in front lets the
/// coordinator find the one row to compare against (by primary key) instead of searching
/// by the secret, and lets an operator tell which token a host used. Presented and stored
/// hashes are compared in constant time.
///
/// A token may be bound to one host name (`join-token create --name`): it then enrolls
/// that name only, and it is the only kind that can enroll a name which already has a live
/// certificate or was forgotten (`TrustPolicy.enrollmentRefusal`). Otherwise anyone holding
/// any token could enroll `deploy-1` again and connect as it.
public struct JoinToken: Sendable, Equatable {
    /// `jt_` and 8 lowercase hex digits.
    public var id: String
    /// SHA-256 of the whole secret text.
    public var secretHash: Data
    public var labels: [LabelPattern]
    public var description: String
    public var createdAt: Date
    public var expiresAt: Date?
    /// Nil: unlimited.
    public var usesLeft: Int?
    public var revokedAt: Date?
    /// The one host name this token enrolls; nil: any name not already taken.
    public var host: String?

    public init(
        id: String, secretHash: Data, labels: [LabelPattern], description: String, createdAt: Date, expiresAt: Date?,
        usesLeft: Int?, revokedAt: Date?, host: String? = nil
    ) {
        self.id = id
        self.secretHash = secretHash
        self.labels = labels
        self.description = description
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.usesLeft = usesLeft
        self.revokedAt = revokedAt
        self.host = host
    }

    /// Longest description kept: a note for operators, not a document.
    public static let maximumDescriptionLength = 256
    static let idPrefix = "jt_"

    /// A new token and its secret (print it once; it cannot be recovered).
    public static func create(
        labels: [LabelPattern], description: String, expiresAt: Date?, uses: Int?, now: Date, host: String? = nil
    ) -> (token: JoinToken, secret: String) {
        var generator = SystemRandomNumberGenerator()
        let id = idPrefix + CertificateEncoding.hex((0..<4).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let secret = id + "." + CertificateEncoding.hex((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let token = JoinToken(
            id: id, secretHash: hash(secret), labels: labels, description: description, createdAt: now, expiresAt: expiresAt,
            usesLeft: uses, revokedAt: nil, host: host)
        return (token, secret)
    }

    /// The id a presented secret names, if it is shaped like one of these tokens; nil for
    /// anything else (the legacy `join.token`, garbage).
    public static func id(inSecret secret: String) -> String? {
        let bytes = Array(secret.utf8)
        let idLength = idPrefix.utf8.count + 8
        guard bytes.count == idLength + 1 + 64, secret.hasPrefix(idPrefix), bytes[idLength] == UInt8(ascii: ".") else {
            return nil
        }
        let isHex: (UInt8) -> Bool = { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
        guard bytes[idPrefix.utf8.count..<idLength].allSatisfy(isHex), bytes[(idLength + 1)...].allSatisfy(isHex) else {
            return nil
        }
        return String(decoding: bytes[..<idLength], as: UTF8.self)
    }

    /// Whether `secret` is this token's, in time independent of where they differ.
    public func matches(secret: String) -> Bool {
        SecretDigest.equal(Self.hash(secret), secretHash)
    }

    /// Why the token cannot enroll anyone at `now`, or nil if it can.
    public func problem(now: Date) -> String? {
        if let revokedAt { return "join token \(id) was revoked at \(revokedAt.formatted(.iso8601))" }
        if let expiresAt, now >= expiresAt { return "join token \(id) expired at \(expiresAt.formatted(.iso8601))" }
        if let usesLeft, usesLeft <= 0 { return "join token \(id) has been used as many times as it allowed" }
        return nil
    }

    static func hash(_ secret: String) -> Data {
        SecretDigest.sha256(secret)
    }
}
