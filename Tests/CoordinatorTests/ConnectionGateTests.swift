import GantryCoordinator
import GantryProtocol
import Testing

@Suite("Connection gate", .timeLimit(.minutes(1)))
struct ConnectionGateTests {
    let hello = Gantry_V1_Envelope.with { $0.hello = .with { $0.agentID = "h/1" } }

    @Test func withoutACertificateOnlyEnrollmentIsAllowed() {
        var gate = ConnectionGate(certificateName: nil)
        guard case .reject(.certificateRequired, let message) = gate.received(hello) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(message.contains("enroll"))
        #expect(gate.state == .closed)
        #expect(gate.received(hello) == .ignore)

        var enrolling = ConnectionGate(certificateName: nil)
        let request = Gantry_V1_EnrollRequest.with { $0.token = "t" }
        #expect(enrolling.received(.with { $0.enrollRequest = request }) == .enroll(request))
        #expect(enrolling.state == .closed)
    }

    @Test func authenticatedConnectionForwardsAfterTheHandshake() {
        var gate = ConnectionGate(certificateName: "h")
        #expect(gate.received(hello) == .hello(hello.hello, certificateName: "h"))
        gate.accepted(agentID: "h/1")
        let ready = Gantry_V1_Envelope.with { $0.ready = .with { $0.slots = 1 } }
        #expect(gate.received(ready) == .forward(ready, agentID: "h/1"))
        guard case .reject(.unexpectedMessage, _) = gate.received(hello) else {
            Issue.record("a second Hello must be refused")
            return
        }
    }

    @Test func firstMessageMustBeHello() {
        var gate = ConnectionGate(certificateName: "h")
        guard case .reject(.unexpectedMessage, _) = gate.received(.with { $0.ready = .with { $0.slots = 1 } }) else {
            Issue.record("expected a refusal")
            return
        }
    }
}
