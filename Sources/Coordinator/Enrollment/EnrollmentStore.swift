import Foundation

/// Where join tokens, enrollment records and revoked hosts are kept. `SQLiteStore`
/// implements it (`SQLiteStore+Enrollment.swift`); another back end (PostgreSQL) must keep
/// the same atomicity: a token's use and the record it produced are one transaction, and so
/// are a renewal's revocation check and its record.
///
/// Every method is a point read or a small write: the listener calls them on the
/// connection's task, never on the core's actor.
public protocol EnrollmentStore: Sendable {
    func insertJoinToken(_ token: JoinToken) throws
    func joinToken(id: String) throws -> JoinToken?
    /// Every token, newest first.
    func joinTokens() throws -> [JoinToken]
    /// Marks the token revoked; false if there is no such token. Revoking twice keeps the
    /// first time.
    func revokeJoinToken(id: String, at: Date) throws -> Bool

    /// In one transaction: checks that the token can still enroll at `now`
    /// (`JoinToken.problem`) and may enroll `enrollment.host` (`TrustPolicy.enrollmentRefusal`:
    /// the name's live records and its forget), takes one use from it and records
    /// `enrollment`. Returns the refusal (and records nothing) if it cannot. One
    /// transaction, so two enrollments racing for a name or a single-use token cannot both
    /// succeed.
    func redeemJoinToken(id: String, now: Date, recording enrollment: EnrollmentRecord) throws -> EnrollmentRefusal?
    /// In one transaction: checks that the legacy `join.token` (never bound) may enroll
    /// `enrollment.host` at `now`, and records the certificate. Returns the refusal (and
    /// records nothing) if it may not.
    func recordEnrollment(_ enrollment: EnrollmentRecord, now: Date) throws -> EnrollmentRefusal?
    /// In one transaction: checks that the certificate `renewal.renewedFrom` is not revoked
    /// (`TrustPolicy.revocation`) and records `renewal`. Returns the refusal (and records
    /// nothing) if it is: a forget racing a renewal either comes first and the renewal is
    /// refused, or comes after and revokes the new certificate too.
    func recordRenewal(_ renewal: EnrollmentRecord) throws -> TrustPolicy.Refusal?

    func enrollment(serial: String) throws -> EnrollmentRecord?
    /// When `host` was last forgotten, or nil.
    func hostRevokedAt(_ host: String) throws -> Date?
    /// Revokes every certificate of `host`: marks its records revoked and records the host
    /// as forgotten at `at` (which also covers certificates without a record). Returns how
    /// many records it marked.
    func revokeHost(_ host: String, at: Date, by actor: String) throws -> Int
}
