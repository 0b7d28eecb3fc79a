import Crypto
import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Logging
import Testing
import X509

/// Join tokens, enrollment records, the `Hello` trust check, renewal and forget, against
/// each real store (no network: `TrustedAgentListenerTests` runs the same over TLS).
@Suite("Enrollment and trusted agents", .timeLimit(.minutes(2)))
final class EnrollmentTests {
    let authority: CertificateAuthority
    let legacy = String(repeating: "ab", count: 32)
    let now = Date()
    /// The store under test: each store test opens it first (`use`).
    private var scratch: ScratchStore?

    init() throws {
        authority = try CertificateAuthority.create()
    }

    func use(_ factory: StoreFactory) throws {
        scratch = try factory.make()
        _ = try #require(scratch?.store as? any EnrollmentStore)
    }

    var coordinatorStore: any CoordinatorStore { scratch!.store }
    var store: any EnrollmentStore { coordinatorStore as! any EnrollmentStore }

    var enrollment: Enrollment { Enrollment(authority: authority, legacyJoinToken: legacy, store: store) }

    func request(_ token: String, name: String = "h") throws -> (Gantry_V1_EnrollRequest, Certificate.PrivateKey) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let request = Gantry_V1_EnrollRequest.with {
            $0.token = token
            $0.agentID = name
            $0.csrDer = Data((try? AgentCSR.make(agentID: name, key: key)) ?? [])
        }
        return (request, key)
    }

    /// Enrolls and returns the issued certificate's facts as the listener would see them.
    func enrolled(_ token: String, name: String = "h", at time: Date? = nil) throws -> PeerCertificate {
        let response = try enrollment.enroll(try request(token, name: name).0, now: time ?? now).get()
        return try #require(PeerCertificate(try Certificate(derEncoded: Array(response.certificateDer))))
    }

    func hello(_ labels: [String: String], id: String = "h/1") -> Gantry_V1_Hello {
        .with {
            $0.agentID = id
            $0.labels = labels
        }
    }

    func createToken(_ patterns: String, uses: Int? = nil, expiresIn: TimeInterval? = nil, host: String? = nil) throws -> (JoinToken, String) {
        let (token, secret) = JoinToken.create(
            labels: try LabelPattern.parseList(patterns), description: "test", expiresAt: expiresIn.map { now.addingTimeInterval($0) },
            uses: uses, now: now, host: host)
        try store.insertJoinToken(token)
        return (token, secret)
    }

    @Test(arguments: StoreFactory.all) func legacyTokenEnrollsUnrestrictedButNeverTrusted(_ factory: StoreFactory) throws {
        try use(factory)
        let peer = try enrolled(legacy)
        let record = try #require(try store.enrollment(serial: peer.serial))
        #expect(record.host == "h" && record.labels == [.anyUntrusted] && record.joinTokenID == nil)
        // Short-lived by default: 30 days (plus the five minutes of backdating).
        #expect(abs(peer.notValidAfter.timeIntervalSince(now) - 30 * 86_400) < 2)
        let admission = HelloAdmission(store: store)
        #expect(admission.refusal(for: hello(["os": "linux"]), peer: peer) == nil)
        let refused = admission.refusal(for: hello(["os": "linux", "queue": "deploy"]), peer: peer)
        #expect(refused?.code == .labelNotAllowed)
        #expect(refused?.message.contains("queue=deploy") == true)
        // A certificate with no record (enrolled before this release) is treated as `*`.
        let old = PeerCertificate(name: "old", serial: "00ff", notValidBefore: now, notValidAfter: now)
        #expect(admission.refusal(for: hello(["os": "linux"], id: "old/1"), peer: old) == nil)
        #expect(admission.refusal(for: hello(["queue": "deploy"], id: "old/1"), peer: old)?.code == .labelNotAllowed)
    }

    @Test(arguments: StoreFactory.all) func storedTokenGrantsItsPatternsAndIsUsedUpAtomically(_ factory: StoreFactory) throws {
        try use(factory)
        let (token, secret) = try createToken("queue=deploy,*", uses: 1)
        let peer = try enrolled(secret, name: "deployer")
        let record = try #require(try store.enrollment(serial: peer.serial))
        #expect(record.joinTokenID == token.id && record.labels == [.exact(key: "queue", value: "deploy"), .anyUntrusted])
        #expect(try store.joinToken(id: token.id)?.usesLeft == 0)
        let admission = HelloAdmission(store: store)
        #expect(admission.refusal(for: hello(["queue": "deploy", "os": "linux"], id: "deployer/1"), peer: peer) == nil)
        #expect(admission.refusal(for: hello(["queue": "release"], id: "deployer/1"), peer: peer)?.code == .labelNotAllowed)
        // Single use: the second host is refused, and nothing is recorded for it.
        guard case .failure(.unusableToken(let why)) = enrollment.enroll(try request(secret, name: "second").0, now: now) else {
            Issue.record("a used-up token must refuse")
            return
        }
        #expect(why.contains("used"))
        // The redeem transaction re-checks, so a race past the first check cannot overdraw.
        let late = EnrollmentRecord(serial: "aa", host: "x", labels: [], joinTokenID: token.id, issuedAt: now, notAfter: now)
        #expect(try store.redeemJoinToken(id: token.id, now: now, recording: late) != nil)
        #expect(try store.enrollment(serial: "aa") == nil)
    }

    @Test(arguments: StoreFactory.all) func wrongExpiredAndRevokedTokensAreRefused(_ factory: StoreFactory) throws {
        try use(factory)
        let (_, secret) = try createToken("*", expiresIn: 60)
        #expect(enrollment.enroll(try request("wrong").0) == .failure(.badToken))
        // The right id with a wrong secret is as wrong as anything else.
        let forged = String(secret.prefix(12)) + String(repeating: "0", count: 64)
        #expect(enrollment.enroll(try request(forged).0) == .failure(.badToken))
        guard case .failure(.unusableToken(let expired)) = enrollment.enroll(try request(secret).0, now: now.addingTimeInterval(61))
        else {
            Issue.record("an expired token must refuse")
            return
        }
        #expect(expired.contains("expired"))
        let (revoked, revokedSecret) = try createToken("*")
        #expect(try store.revokeJoinToken(id: revoked.id, at: now))
        #expect(try !store.revokeJoinToken(id: "jt_00000000", at: now))
        guard case .failure(.unusableToken(let why)) = enrollment.enroll(try request(revokedSecret).0) else {
            Issue.record("a revoked token must refuse")
            return
        }
        #expect(why.contains("revoked"))
        // Listing shows every token, never a secret.
        let listed = try store.joinTokens()
        #expect(listed.count == 2)
        #expect(listed.first { $0.id == revoked.id }?.revokedAt != nil)
        // The legacy file can be switched off.
        let noLegacy = Enrollment(authority: authority, legacyJoinToken: nil, store: store)
        #expect(noLegacy.enroll(try request(legacy).0) == .failure(.badToken))
    }

    /// A renewal request with a new key.
    func renewRequest() -> (Gantry_V1_RenewRequest, Certificate.PrivateKey) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        return (.with { $0.csrDer = Data((try? AgentCSR.make(agentID: "anything", key: key)) ?? []) }, key)
    }

    @Test(arguments: StoreFactory.all) func renewalKeepsTheEnrollmentAndStopsAtForget(_ factory: StoreFactory) throws {
        try use(factory)
        let (token, secret) = try createToken("queue=deploy,*")
        let peer = try enrolled(secret, name: "deployer")
        let renewal = CertificateRenewal(authority: authority, store: store, certificateValidity: 3600)
        let (csr, key) = renewRequest()
        // Day 21 of 30: inside the renewal window.
        let due = now.addingTimeInterval(21 * 86_400)
        let renewedNow = try renewal.renew(csr, peer: peer, now: due).get()
        let response = CertificateRenewal.response(.success(renewedNow))
        let renewed = try Certificate(derEncoded: Array(response.certificateDer))
        #expect(renewedNow.serial == PeerCertificate.serial(of: renewed))
        // For the host the old certificate names (not what the CSR says), for the new key.
        #expect(PeerCertificate(renewed)?.name == "deployer")
        #expect(renewed.publicKey == key.publicKey)
        #expect(EnrollmentChecks.issuedCertificateProblem(renewed, ca: authority.certificate, publicKey: key.publicKey, now: due) == nil)
        let record = try #require(try store.enrollment(serial: PeerCertificate.serial(of: renewed)))
        #expect(record.renewedFrom == peer.serial && record.joinTokenID == token.id && record.labels == [.exact(key: "queue", value: "deploy"), .anyUntrusted])
        #expect(abs(record.notAfter.timeIntervalSince(due) - 3600) < 2)
        // A bad CSR is refused with a reason (and, nothing issued, takes no slot).
        let bad = renewal.renew(.with { $0.csrDer = Data([1, 2, 3]) }, peer: peer, now: due, instant: .now + .seconds(120))
        #expect(CertificateRenewal.response(bad).error.contains("renewal refused"))
        // Forgotten: neither certificate renews or connects.
        #expect(try store.revokeHost("deployer", at: due.addingTimeInterval(1), by: "test") == 2)
        guard case .failure(.revoked(let why)) = renewal.renew(csr, peer: peer, now: due.addingTimeInterval(2)) else {
            Issue.record("a forgotten host's certificate must not renew")
            return
        }
        #expect(why.contains("revoked"))
        let admission = HelloAdmission(store: store)
        #expect(admission.refusal(for: hello([:], id: "deployer/1"), peer: peer)?.code == .certificateRevoked)
        #expect(admission.refusal(for: hello([:], id: "deployer/1"), peer: PeerCertificate(renewed)!)?.code == .certificateRevoked)
        // Enrolled again after the forget, with a token bound to it: the new certificate is
        // the host's identity (the forget still refuses the old ones).
        let (_, bound) = try createToken("*", host: "deployer")
        let again = try enrolled(bound, name: "deployer", at: due.addingTimeInterval(5))
        #expect(admission.refusal(for: hello([:], id: "deployer/1"), peer: again) == nil)
        #expect(admission.refusal(for: hello([:], id: "deployer/1"), peer: peer)?.code == .certificateRevoked)
    }

    @Test(arguments: StoreFactory.all) func renewalOnlyInsideTheWindowAndOncePerHostPerMinute(_ factory: StoreFactory) throws {
        try use(factory)
        let peer = try enrolled(legacy, name: "r")
        let renewal = CertificateRenewal(authority: authority, store: store)
        let (csr, _) = renewRequest()
        // Day 10 of 30: not due; told when it will be, and nothing is issued.
        guard case .failure(let early) = renewal.renew(csr, peer: peer, now: now.addingTimeInterval(10 * 86_400)) else {
            Issue.record("a certificate that is not due must not renew")
            return
        }
        guard case .notDue(let dueAt) = early else {
            Issue.record("expected notDue, got \(early)")
            return
        }
        #expect(abs(dueAt.timeIntervalSince(peer.notValidBefore) - (peer.notValidAfter.timeIntervalSince(peer.notValidBefore) * 2 / 3)) < 1)
        #expect(CertificateRenewal.response(.failure(early)).error.contains("not due for renewal until"))
        // Due: accepted once.
        let due = now.addingTimeInterval(21 * 86_400)
        let start = ContinuousClock.now
        _ = try renewal.renew(csr, peer: peer, now: due, instant: start).get()
        // Again within a minute (another connection of the same host: same limiter): refused.
        #expect(renewal.renew(csr, peer: peer, now: due, instant: start + .seconds(30)) == .failure(.renewedRecently(host: "r")))
        let copy = renewal
        #expect(copy.renew(csr, peer: peer, now: due, instant: start + .seconds(59)) == .failure(.renewedRecently(host: "r")))
        // Another host is not held back by this one.
        let other = try enrolled(legacy, name: "r2")
        _ = try renewal.renew(csr, peer: other, now: due, instant: start + .seconds(1)).get()
        // A minute later: accepted again.
        _ = try renewal.renew(csr, peer: peer, now: due, instant: start + .seconds(61)).get()
    }

    @Test func renewalLimiterIsBounded() {
        let limiter = HostRenewalLimiter(interval: .seconds(60), capacity: 2)
        let start = ContinuousClock.now
        #expect(limiter.reserve("a", at: start) == .reserved)
        #expect(limiter.reserve("b", at: start) == .reserved)
        // Full of recent hosts: refused rather than forgetting one that renewed.
        #expect(limiter.reserve("c", at: start + .seconds(1)) == .full)
        // Once they are older than the interval they are dropped.
        #expect(limiter.reserve("c", at: start + .seconds(61)) == .reserved)
        limiter.release("c", reservedAt: start + .seconds(61))
        #expect(limiter.reserve("c", at: start + .seconds(62)) == .reserved)
    }

    // MARK: - Names: a token for one host cannot take another's

    @Test(arguments: StoreFactory.all) func aLiveNameIsRefusedToAnUnboundToken(_ factory: StoreFactory) throws {
        try use(factory)
        _ = try enrolled(legacy, name: "deploy-1")
        guard case .failure(.nameRefused(.hostEnrolled(let host, let until))) = enrollment.enroll(try request(legacy, name: "deploy-1").0, now: now)
        else {
            Issue.record("the legacy token must not enroll a name that is enrolled")
            return
        }
        #expect(host == "deploy-1" && until > now)
        let (token, secret) = try createToken("*", uses: 3)
        guard case .failure(.nameRefused(let refusal)) = enrollment.enroll(try request(secret, name: "deploy-1").0, now: now) else {
            Issue.record("an unbound token must not enroll a name that is enrolled")
            return
        }
        #expect(refusal.description.contains("join-token create --name deploy-1"))
        #expect(refusal.description.contains("gantry agents forget deploy-1"))
        // Refused in the transaction: the token's use is not taken, nothing is recorded.
        #expect(try store.joinToken(id: token.id)?.usesLeft == 3)
        let record = EnrollmentRecord(serial: "bb", host: "deploy-1", labels: [], joinTokenID: token.id, issuedAt: now, notAfter: now)
        #expect(try store.redeemJoinToken(id: token.id, now: now, recording: record) == .hostEnrolled(host: "deploy-1", until: until))
        #expect(try store.enrollment(serial: "bb") == nil)
        // A free name still enrolls with either.
        _ = try enrolled(secret, name: "deploy-2")
        _ = try enrolled(legacy, name: "deploy-3")
    }

    @Test(arguments: StoreFactory.all) func aForgottenNameIsRefusedToAnUnboundToken(_ factory: StoreFactory) throws {
        try use(factory)
        _ = try enrolled(legacy, name: "gone")
        #expect(try store.revokeHost("gone", at: now.addingTimeInterval(1), by: "test") == 1)
        // Also a name forgotten without ever having a record.
        #expect(try store.revokeHost("never", at: now.addingTimeInterval(1), by: "test") == 0)
        let (_, secret) = try createToken("*")
        for name in ["gone", "never"] {
            for token in [legacy, secret] {
                guard case .failure(.nameRefused(.hostForgotten(let host, _))) = enrollment.enroll(try request(token, name: name).0, now: now.addingTimeInterval(2))
                else {
                    Issue.record("an unbound token must not undo the forget of \(name)")
                    continue
                }
                #expect(host == name)
            }
        }
    }

    @Test(arguments: StoreFactory.all) func aBoundTokenEnrollsItsNameOnly(_ factory: StoreFactory) throws {
        try use(factory)
        let old = try enrolled(legacy, name: "deploy-1")
        let (token, secret) = try createToken("queue=deploy,*", uses: 5, host: "deploy-1")
        // Another name, free or not, is refused before anything is signed or used.
        for name in ["elsewhere", "deploy-1x"] {
            guard case .failure(.nameRefused(let refusal)) = enrollment.enroll(try request(secret, name: name).0, now: now) else {
                Issue.record("a token bound to deploy-1 must not enroll \(name)")
                continue
            }
            #expect(refusal == .boundToAnotherHost(tokenID: token.id, boundTo: "deploy-1", requested: name))
            #expect(refusal.description.contains("--name deploy-1"))
        }
        #expect(try store.joinToken(id: token.id)?.usesLeft == 5)
        // Its name, although live: the rebuilt host gets a certificate with the token's labels.
        let rebuilt = try enrolled(secret, name: "deploy-1", at: now.addingTimeInterval(1))
        #expect(try store.enrollment(serial: rebuilt.serial)?.joinTokenID == token.id)
        // Its name after a forget: enrolled, the new certificate accepted, the old ones not.
        #expect(try store.revokeHost("deploy-1", at: now.addingTimeInterval(2), by: "test") == 2)
        let back = try enrolled(secret, name: "deploy-1", at: now.addingTimeInterval(3))
        let admission = HelloAdmission(store: store)
        #expect(admission.refusal(for: hello(["queue": "deploy"], id: "deploy-1/0"), peer: back) == nil)
        for revoked in [old, rebuilt] {
            #expect(admission.refusal(for: hello([:], id: "deploy-1/0"), peer: revoked)?.code == .certificateRevoked)
        }
        // The forget stays: an unbound token still cannot enroll the name.
        guard case .failure(.nameRefused(.hostForgotten)) = enrollment.enroll(try request(legacy, name: "deploy-1").0, now: now.addingTimeInterval(4))
        else {
            Issue.record("the legacy token must still be refused for a forgotten name")
            return
        }
    }

    @Test(arguments: StoreFactory.all) func anExpiredEnrollmentDoesNotHoldTheName(_ factory: StoreFactory) throws {
        try use(factory)
        // Enrolled 31 days ago with a 30-day certificate, never renewed: the name is free.
        _ = try enrolled(legacy, name: "stale", at: now.addingTimeInterval(-31 * 86_400))
        let fresh = try enrolled(legacy, name: "stale")
        #expect(try store.enrollment(serial: fresh.serial)?.host == "stale")
    }

    @Test(arguments: StoreFactory.all) func forgetClosesTheHostsConnectionsAndDrainStopsLeases(_ factory: StoreFactory) async throws {
        try use(factory)
        let core = try CoordinatorCore(
            store: coordinatorStore, configuration: .init(heartbeatInterval: .seconds(1)), logger: Logger(label: "test"))
        func connect(_ id: String, host: String) async throws -> AgentSession {
            let session = AgentSession(agentID: id)
            let hello = Gantry_V1_Hello.with {
                $0.minVersion = 1
                $0.maxVersion = ProtocolVersion.current
                $0.agentID = id
                $0.capacity = 1
            }
            _ = try await core.hello(hello, certificateName: host, session: session).get()
            return session
        }
        let first = try await connect("h/1", host: "h")
        let second = try await connect("h/2", host: "h")
        let other = try await connect("hx/1", host: "hx")
        let peer = try enrolled(legacy)
        let revocation = AgentRevocation(store: store, core: core)
        let before = ContinuousClock.now
        do {
            _ = try await revocation.forget(agentID: "../x", by: "alice")
            Issue.record("a malformed agent id must be refused")
        } catch {
            guard case .badAgentID = error else { throw error }
        }
        let forgotten = try await revocation.forget(agentID: "h/1", by: "alice")
        #expect(forgotten.host == "h" && forgotten.certificatesRevoked == 1 && forgotten.disconnected == ["h/1", "h/2"])
        #expect(revocation.wasForgotten(host: "h", since: before))
        #expect(!revocation.wasForgotten(host: "h", since: .now))
        #expect(!revocation.wasForgotten(host: "hx", since: before))
        for session in [first, second] {
            var frames: [Gantry_V1_Envelope] = []
            for await frame in session.outbound { frames.append(frame) }  // ends: the session was closed
            #expect(frames.last?.error.code == .certificateRevoked)
        }
        #expect(try store.hostRevokedAt("h") != nil)
        #expect(HelloAdmission(store: store).refusal(for: hello([:]), peer: peer)?.code == .certificateRevoked)

        // Drain: the agent is told, and is leased nothing more.
        #expect(await core.drain(agentID: "hx/1", reason: "maintenance"))
        #expect(!(await core.drain(agentID: "nobody/1")))
        var iterator = other.outbound.makeAsyncIterator()
        #expect(await iterator.next()?.drain.reason == "maintenance")
        #expect(await core.listAgents().first { $0.id == "hx/1" }?.state == "draining")
    }
}
