import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Logging
import Testing

/// Job tokens: the MAC and its strict parse, and the core's answer to "is that attempt
/// held?" (a finished or retried attempt's token is refused), with the lease that carries
/// the token as the core sends it.
@Suite("Job tokens", .timeLimit(.minutes(2)))
struct JobTokenTests {
    let key = JobTokenKey.ephemeral()
    let job = "6f1c2e4a-0000-4000-8000-000000000001"

    func refusal(_ text: String, key: JobTokenKey? = nil) -> JobTokenRefusal? {
        do {
            _ = try JobToken.verify(Substring(text), key: key ?? self.key)
            return nil
        } catch {
            return error
        }
    }

    @Test func aTokenVerifiesAsItsJobAndAttempt() throws {
        let text = JobToken(jobID: job, attempt: 3).text(key: key)
        #expect(text.hasPrefix("gjt_\(job).3.") && text.utf8.count == 4 + 36 + 1 + 1 + 1 + 64)
        #expect(try JobToken.verify(Substring(text), key: key) == JobToken(jobID: job, attempt: 3))
        // The same key derived from the same secrets key after a restart: still valid.
        let secrets = SecretKey.generate()
        let issued = JobToken(jobID: job, attempt: 1).text(key: JobTokenKey(derivedFrom: secrets))
        #expect(try JobToken.verify(Substring(issued), key: JobTokenKey(derivedFrom: SecretKey(secrets.key))).attempt == 1)
    }

    @Test func anotherAttemptAnotherJobOrAnotherKeyIsForged() {
        let text = JobToken(jobID: job, attempt: 1).text(key: key)
        let mac = String(text.split(separator: ".").last ?? "")
        #expect(refusal("gjt_\(job).2.\(mac)") == .forged)
        #expect(refusal("gjt_6f1c2e4a-0000-4000-8000-000000000002.1.\(mac)") == .forged)
        #expect(refusal(text, key: .ephemeral()) == .forged)
        #expect(refusal("gjt_\(job).1.\(String(repeating: "0", count: 64))") == .forged)
        // One flipped digit of the MAC.
        let flipped = String(text.dropLast()) + (text.last == "0" ? "1" : "0")
        #expect(refusal(flipped) == .forged)
    }

    @Test func malformedTokensAreRefusedBeforeAnyMAC() {
        let text = JobToken(jobID: job, attempt: 1).text(key: key)
        let mac = String(text.split(separator: ".").last ?? "")
        let cases = [
            "", "gjt_", "gjt_..", String(text.dropLast()), text + "0", text.uppercased(),
            "gty_\(job).1.\(mac)", "gjt_\(job).0.\(mac)", "gjt_\(job).01.\(mac)", "gjt_\(job).-1.\(mac)",
            "gjt_\(job).4294967296.\(mac)", "gjt_\(job).1.\(mac.uppercased())", "gjt_\(job).1.\(mac).x",
            "gjt_\(job)/x.1.\(mac)", "gjt_.1.\(mac)", "gjt_\(String(repeating: "a", count: 129)).1.\(mac)",
            "gjt_" + String(repeating: "9", count: 100_000), "gjt_\(job).1.\(mac) ", "gjt_\(job).1.\u{0}\(mac.dropFirst())",
            "gjt_\(job).１.\(mac)",
        ]
        for text in cases { #expect(refusal(text) == .malformed, "\(text.prefix(80))") }
        #expect(refusal("gjt_\(job).4294967295.\(mac)") == .forged)
    }

    @Test func aFinishedOrRetriedAttemptsTokenIsRefusedByTheCore() async throws {
        let directory = NSTemporaryDirectory() + "gantry-jobtoken-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLiteStore(path: directory + "/gantry.sqlite")
        let core = try CoordinatorCore(
            store: store, configuration: .init(heartbeatInterval: .seconds(1), leaseTTL: .seconds(15)), logger: Logger(label: "test"))
        let session = AgentSession(agentID: "h/1")
        var frames = session.outbound.makeAsyncIterator()
        _ = try await core.hello(
            .with {
                $0.minVersion = 1
                $0.maxVersion = 1
                $0.agentID = "h/1"
                $0.capacity = 1
            }, certificateName: "h", session: session
        ).get()
        let pipeline = try await core.submit(.init(yaml: "steps:\n  - key: a\n    command: 'true'\n"))
        await core.receive(.with { $0.ready = .with { $0.slots = 1 } }, from: "h/1", session: session)
        let lease = try #require(await frames.next()?.lease)
        // The lease carries its token as sent; the job's view and row do not.
        let token = try core.secrets.jobTokens.verify(Substring(lease.jobToken))
        #expect(token == JobToken(jobID: lease.jobID, attempt: lease.attempt))
        let authenticator = JobTokenAuthenticator(core: core)
        let principal = try await authenticator.authenticate(Substring(lease.jobToken)).get()
        #expect(principal.job == Principal.JobGrant(jobID: lease.jobID, attempt: 1, pipelineID: pipeline.id))
        #expect(principal.bindings.isEmpty && !principal.allows(.read))
        // Another attempt of the same job is not held.
        let other = JobToken(jobID: lease.jobID, attempt: 2).text(key: core.secrets.jobTokens.key)
        #expect(await authenticator.authenticate(Substring(other)) == .failure(.notHeld(jobID: lease.jobID, attempt: 2)))
        let view = try API.encoder.encode(try #require(try await core.pipeline(id: pipeline.id)))
        #expect(String(decoding: view, as: UTF8.self).contains(lease.jobToken) == false)

        // Finished: the same token is refused.
        await core.receive(
            .with {
                $0.jobFinished = .with {
                    $0.jobID = lease.jobID
                    $0.attempt = lease.attempt
                    $0.outcome = .succeeded
                }
            }, from: "h/1", session: session)
        #expect(await frames.next()?.finishAck.jobID == lease.jobID)
        #expect(await authenticator.authenticate(Substring(lease.jobToken)) == .failure(.notHeld(jobID: lease.jobID, attempt: 1)))
        #expect(await core.pipelineHolding(jobID: lease.jobID, attempt: 1) == nil)
        #expect(await core.pipelineHolding(jobID: "nope", attempt: 1) == nil)
    }

    @Test func theDerivedAPIURL() {
        #expect(JobTokens.Endpoint.derived(boundHost: "127.0.0.1", port: 7080, tls: false, advertisedHost: "ci") == "http://127.0.0.1:7080")
        #expect(JobTokens.Endpoint.derived(boundHost: "0.0.0.0", port: 443, tls: true, advertisedHost: "ci.example") == "https://ci.example:443")
        #expect(JobTokens.Endpoint.derived(boundHost: "::1", port: 80, tls: false, advertisedHost: nil) == "http://[::1]:80")
    }
}
