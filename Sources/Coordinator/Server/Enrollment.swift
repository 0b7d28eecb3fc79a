import Crypto
import Foundation
import GantryProtocol
import X509

/// Turns a join token and a CSR into an agent certificate signed by the Gantry CA.
public struct Enrollment: Sendable {
    public let authority: CertificateAuthority
    public let joinToken: String

    public init(authority: CertificateAuthority, joinToken: String) {
        self.authority = authority
        self.joinToken = joinToken
    }

    public enum Failure: Error, Equatable {
        case badToken
        case badRequest(String)
    }

    public func enroll(_ request: Gantry_V1_EnrollRequest) -> Result<Gantry_V1_EnrollResponse, Failure> {
        guard Self.constantTimeEquals(request.token, joinToken) else { return .failure(.badToken) }
        if let problem = AgentID.nameProblem(request.agentID) {
            return .failure(.badRequest("agent name '\(request.agentID.logSafe(maximum: 80))' \(problem)"))
        }
        do {
            let certificate = try authority.signAgentCSR(Array(request.csrDer), agentID: request.agentID)
            let der = try CertificateEncoding.der(certificate)
            let caDER = try CertificateEncoding.der(authority.certificate)
            return .success(
                .with {
                    $0.certificateDer = Data(der)
                    $0.caCertificateDer = Data(caDER)
                })
        } catch {
            return .failure(.badRequest("\(error)"))
        }
    }

    /// Compares secrets without leaking their common prefix through timing.
    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = SHA256.hash(data: Data(a.utf8))
        let y = SHA256.hash(data: Data(b.utf8))
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
