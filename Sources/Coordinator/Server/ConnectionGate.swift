import GantryProtocol

/// What a new agent connection may do, decided by its first message and its certificate.
///
/// A pure value type: the listener feeds it each inbound envelope and performs the action it
/// returns. A connection without a client certificate may only enroll (once); one with a
/// certificate must start with `Hello`; after the handshake every message goes to the core,
/// except a `RenewRequest`, which the listener answers itself (it signs a certificate and
/// writes the store, work the single writer must not do).
public struct ConnectionGate: Sendable {
    public enum State: Sendable, Equatable {
        case awaitingFirstMessage(certificateName: String?)
        case authenticated(agentID: String)
        case closed
    }

    public enum Action: Sendable, Equatable {
        case enroll(Gantry_V1_EnrollRequest)
        case hello(Gantry_V1_Hello, certificateName: String)
        case forward(Gantry_V1_Envelope, agentID: String)
        /// Renew the peer's certificate (`CertificateRenewal`), on the connection's task.
        case renew(Gantry_V1_RenewRequest, agentID: String)
        case reject(Gantry_V1_ErrorCode, String)
        case ignore
    }

    public private(set) var state: State

    public init(certificateName: String?) {
        self.state = .awaitingFirstMessage(certificateName: certificateName)
    }

    public mutating func received(_ envelope: Gantry_V1_Envelope) -> Action {
        switch state {
        case .closed:
            return .ignore
        case .awaitingFirstMessage(let name):
            switch (envelope.body, name) {
            case (.enrollRequest(let request), _):
                state = .closed
                return .enroll(request)
            case (.hello(let hello), let name?):
                return .hello(hello, certificateName: name)
            case (.hello, nil):
                state = .closed
                return .reject(
                    .certificateRequired,
                    "a client certificate is required: enroll this agent with `gantry-agent enroll` first")
            default:
                state = .closed
                return .reject(.unexpectedMessage, "the first message must be Hello (or EnrollRequest)")
            }
        case .authenticated(let agentID):
            switch envelope.body {
            case .hello, .enrollRequest, .welcome, .enrollResponse:
                state = .closed
                return .reject(.unexpectedMessage, "handshake messages are not valid after the handshake")
            case .renewRequest(let request):
                return .renew(request, agentID: agentID)
            default:
                return .forward(envelope, agentID: agentID)
            }
        }
    }

    /// The core accepted the handshake.
    public mutating func accepted(agentID: String) {
        state = .authenticated(agentID: agentID)
    }
}
