import Foundation
import GantryProtocol
import Synchronization

/// `gantry agents forget ID`: revokes every certificate of the agent's host, so its next
/// connection is refused (`CERTIFICATE_REVOKED`), and closes the host's live connections.
///
/// The order closes every gap: the revocation is committed first, so a handshake that
/// reads the store afterwards is refused; the core then closes the sessions it has; and a
/// handshake that read the store just before the commit but reached the core just after
/// the close is caught by the listener asking `wasForgotten(host:since:)` once the core
/// accepted it, which a forget records before it closes anything.
public final class AgentRevocation: Sendable {
    public let store: any EnrollmentStore
    let core: CoordinatorCore
    /// When each host was last forgotten by this process, for handshakes in flight.
    /// Entries older than `recentWindow` are dropped: no handshake lasts that long.
    private let recent = Mutex<[String: ContinuousClock.Instant]>([:])
    static let recentWindow: Duration = .seconds(600)

    public init(store: any EnrollmentStore, core: CoordinatorCore) {
        self.store = store
        self.core = core
    }

    public struct Forgotten: Sendable, Equatable {
        /// The host whose certificates were revoked (the agent id's name part).
        public var host: String
        /// Enrollment records marked revoked (0 for a host enrolled before records were
        /// kept: its certificates are refused through `revoked_hosts`).
        public var certificatesRevoked: Int
        /// The agent and scaler ids whose connections were closed.
        public var disconnected: [String]
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case badAgentID(String)
        case storeFailed(String)

        public var description: String {
            switch self {
            case .badAgentID(let why): return "not an agent id (<host> or <host>/<slot>): \(why)"
            case .storeFailed(let why): return "the revocation could not be stored, nothing was revoked: \(why)"
            }
        }
    }

    /// Revokes the certificates of `agentID`'s host (`<host>` or `<host>/<slot>`: every
    /// slot of a host shares its certificate, so all of them are forgotten) and closes its
    /// connections. Jobs the host held follow the ordinary lease TTL (lost, then retried
    /// elsewhere per their retry rules). `actor` is recorded in `revoked_hosts.by`.
    ///
    /// Forgetting a host that never enrolled is not an error: it records the name, so a
    /// certificate for it that predates enrollment records is refused too.
    public func forget(agentID: String, by actor: String, now: Date = Date()) async throws(Failure) -> Forgotten {
        let host: String
        do {
            host = try AgentID(parsing: agentID).name
        } catch {
            throw .badAgentID(error.description)
        }
        let revoked: Int
        do {
            revoked = try store.revokeHost(host, at: now, by: actor)
        } catch {
            throw .storeFailed("\(error)")
        }
        let instant = ContinuousClock.now
        recent.withLock { recent in
            recent = recent.filter { instant - $0.value < Self.recentWindow }
            recent[host] = instant
        }
        let disconnected = await core.closeConnections(ofHost: host, reason: "host forgotten by \(actor)")
        return Forgotten(host: host, certificatesRevoked: revoked, disconnected: disconnected)
    }

    /// Whether `host` was forgotten (by this process) after `instant`: the listener asks
    /// this once the core accepted a `Hello` whose trust check started at `instant`.
    public func wasForgotten(host: String, since instant: ContinuousClock.Instant) -> Bool {
        recent.withLock { $0[host].map { $0 >= instant } ?? false }
    }
}
