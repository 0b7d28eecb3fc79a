import Foundation
import GantryCoordinator
import GantryProtocol
import Testing

/// The pure decisions of trusted agents: label patterns, which labels an enrollment
/// allows, when a certificate counts as revoked, and the join token's own checks.
@Suite("Trust policy", .timeLimit(.minutes(1)))
struct TrustPolicyTests {
    let policy = TrustPolicy()

    @Test func patternsParseAndRefuseWhatCouldMislead() throws {
        #expect(try LabelPattern(parsing: "queue=deploy") == .exact(key: "queue", value: "deploy"))
        #expect(try LabelPattern(parsing: " os = * ") == .anyValue(key: "os"))
        #expect(try LabelPattern(parsing: "*") == .anyUntrusted)
        #expect(try LabelPattern.parseList("queue=deploy, os=*,,*,os=*") == [.exact(key: "queue", value: "deploy"), .anyValue(key: "os"), .anyUntrusted])
        for bad in ["queue", "=x", "*=*", "q*=x", "queue=deploy-*", "a b=c", "k=\u{1}", String(repeating: "k", count: 64) + "=v"] {
            #expect(throws: LabelPatternError.self, "\(bad)") { try LabelPattern(parsing: bad) }
        }
        let tooMany = (0...LabelPattern.maximumCount).map { "k\($0)=v" }.joined(separator: ",")
        #expect(throws: LabelPatternError.self) { try LabelPattern.parseList(tooMany) }
        #expect(try LabelPattern(parsing: "team/queue=a=b").description == "team/queue=a=b")
    }

    @Test func starNeverGrantsATrustedKey() {
        #expect(policy.refusedLabel(["os": "linux", "arch": "arm64"], allowedBy: [.anyUntrusted]) == nil)
        let refused = policy.refusedLabel(["os": "linux", "queue": "deploy"], allowedBy: [.anyUntrusted])
        #expect(refused?.key == "queue" && refused?.value == "deploy")
        // Only a pattern naming the trusted key grants it, and only the values it names.
        #expect(policy.refusedLabel(["queue": "deploy", "os": "linux"], allowedBy: [.exact(key: "queue", value: "deploy"), .anyUntrusted]) == nil)
        #expect(policy.refusedLabel(["queue": "release"], allowedBy: [.exact(key: "queue", value: "deploy")])?.value == "release")
        #expect(policy.refusedLabel(["queue": "release"], allowedBy: [.anyValue(key: "queue")]) == nil)
        // Without `*`, untrusted keys need their own pattern too.
        #expect(policy.refusedLabel(["os": "linux"], allowedBy: [.exact(key: "queue", value: "deploy")])?.key == "os")
        #expect(policy.refusedLabel([:], allowedBy: []) == nil)
        // Trusted keys are configurable.
        let custom = TrustPolicy(trustedKeys: ["env"])
        #expect(custom.refusedLabel(["queue": "deploy"], allowedBy: [.anyUntrusted]) == nil)
        #expect(custom.refusedLabel(["env": "prod"], allowedBy: [.anyUntrusted])?.key == "env")
    }

    @Test func theRefusalNamesTheLabelAndTheFix() throws {
        let refusal = try #require(policy.labelRefusal(host: "h", claimed: ["queue": "deploy"], allowedBy: TrustPolicy.unrestricted))
        #expect(refusal.code == .labelNotAllowed)
        #expect(refusal.message.contains("queue=deploy"))
        #expect(refusal.message.contains("join-token create --labels queue=deploy"))
        #expect(refusal.message.contains("trusted label key"))
        // Bounded whatever the patterns and labels are.
        let many = (0..<64).map { LabelPattern.exact(key: "k\($0)", value: String(repeating: "v", count: 255)) }
        let long = try #require(policy.labelRefusal(host: "h", claimed: ["queue": String(repeating: "x", count: 255)], allowedBy: many))
        #expect(long.message.utf8.count < WireLimits.messageLength)
    }

    @Test func revocationByRecordOrByHost() {
        let issued = Date(timeIntervalSince1970: 1_000_000)
        let record = EnrollmentRecord(
            serial: "01", host: "h", labels: [.anyUntrusted], joinTokenID: nil, issuedAt: issued,
            notAfter: issued.addingTimeInterval(86_400))
        #expect(TrustPolicy.revocation(host: "h", enrollment: record, hostRevokedAt: nil) == nil)
        #expect(TrustPolicy.revocation(host: "h", enrollment: nil, hostRevokedAt: nil) == nil)
        // Forgotten after (or at) issue: revoked. Enrolled again after the forget: not.
        #expect(TrustPolicy.revocation(host: "h", enrollment: record, hostRevokedAt: issued)?.code == .certificateRevoked)
        #expect(TrustPolicy.revocation(host: "h", enrollment: record, hostRevokedAt: issued.addingTimeInterval(1)) != nil)
        #expect(TrustPolicy.revocation(host: "h", enrollment: record, hostRevokedAt: issued.addingTimeInterval(-1)) == nil)
        // A record marked revoked, whatever the host table says.
        var revoked = record
        revoked.revokedAt = issued
        #expect(TrustPolicy.revocation(host: "h", enrollment: revoked, hostRevokedAt: nil) != nil)
        // No record (issued before records were kept): revoked whenever the host was forgotten.
        let unknown = TrustPolicy.revocation(host: "h", enrollment: nil, hostRevokedAt: issued)
        #expect(unknown?.message.contains("enroll it again") == true || unknown?.message.contains("enroll this host") == true)
    }

    @Test func joinTokenSecretsAndUsability() throws {
        let now = Date(timeIntervalSince1970: 2_000_000)
        let (token, secret) = JoinToken.create(
            labels: [.exact(key: "queue", value: "deploy")], description: "deploy hosts", expiresAt: now.addingTimeInterval(3600),
            uses: 1, now: now)
        #expect(token.id.hasPrefix("jt_") && token.id.count == 11)
        #expect(JoinToken.id(inSecret: secret) == token.id)
        #expect(token.matches(secret: secret))
        #expect(!token.matches(secret: secret.dropLast() + "0") || secret.hasSuffix("0"))
        #expect(!token.secretHash.isEmpty && !secret.contains(token.secretHash.base64EncodedString()))
        // Not shaped like a stored token: the legacy file's hex, garbage, near misses.
        for other in [String(repeating: "a", count: 64), "", "jt_", "jt_1234567.abc", "jt_ZZZZZZZZ." + String(repeating: "0", count: 64), secret + "0", secret.uppercased()] {
            #expect(JoinToken.id(inSecret: other) == nil, "\(other)")
        }
        #expect(token.problem(now: now) == nil)
        #expect(token.problem(now: now.addingTimeInterval(3600))?.contains("expired") == true)
        var used = token
        used.usesLeft = 0
        #expect(used.problem(now: now)?.contains("used") == true)
        var revoked = token
        revoked.revokedAt = now
        #expect(revoked.problem(now: now)?.contains("revoked") == true)
    }

    @Test func aNameInUseOrForgottenTakesATokenBoundToIt() {
        let now = Date(timeIntervalSince1970: 2_000_000)
        let unbound = JoinToken.create(labels: [.anyUntrusted], description: "", expiresAt: nil, uses: nil, now: now).token
        let bound = JoinToken.create(labels: [.anyUntrusted], description: "", expiresAt: nil, uses: 1, now: now, host: "deploy-1").token
        let live = now.addingTimeInterval(86_400)
        // A free name: any token but one bound elsewhere.
        #expect(TrustPolicy.enrollmentRefusal(host: "new", token: nil, liveUntil: nil, forgottenAt: nil) == nil)
        #expect(TrustPolicy.enrollmentRefusal(host: "new", token: unbound, liveUntil: nil, forgottenAt: nil) == nil)
        #expect(
            TrustPolicy.enrollmentRefusal(host: "new", token: bound, liveUntil: nil, forgottenAt: nil)
                == .boundToAnotherHost(tokenID: bound.id, boundTo: "deploy-1", requested: "new"))
        // Live or forgotten: only the bound token.
        for token in [nil, unbound] {
            #expect(
                TrustPolicy.enrollmentRefusal(host: "deploy-1", token: token, liveUntil: live, forgottenAt: nil)
                    == .hostEnrolled(host: "deploy-1", until: live))
            #expect(
                TrustPolicy.enrollmentRefusal(host: "deploy-1", token: token, liveUntil: live, forgottenAt: now)
                    == .hostForgotten(host: "deploy-1", at: now))
        }
        #expect(TrustPolicy.enrollmentRefusal(host: "deploy-1", token: bound, liveUntil: live, forgottenAt: now) == nil)
        // The messages say what to run.
        let message = EnrollmentRefusal.hostEnrolled(host: "deploy-1", until: live).description
        #expect(message.contains("join-token create --name deploy-1") && message.contains("gantry agents forget deploy-1"))
        #expect(EnrollmentRefusal.hostForgotten(host: "deploy-1", at: now).description.contains("join-token create --name deploy-1"))
    }
}
