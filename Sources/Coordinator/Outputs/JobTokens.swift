import Foundation
import GantryProtocol
import Synchronization

/// What the send edge adds to every lease so its step can call the API as its job: the
/// attempt's token (`JobToken`), the API's URL as steps reach it, and whether that API
/// presents the coordinator's own certificate (so the agent exports its pinned CA as
/// `GANTRY_CA_FILE`).
///
/// The URL is set once the HTTP listener is bound (`serve` may use port 0, and the
/// default URL names the bound port), hence the lock; tokens need only the key.
public final class JobTokens: Sendable {
    /// Where steps reach the API.
    public struct Endpoint: Sendable, Equatable {
        public var url: String
        public var usesCoordinatorCA: Bool

        public init(url: String, usesCoordinatorCA: Bool) {
            self.url = url
            self.usesCoordinatorCA = usesCoordinatorCA
        }

        /// The default of `serve --api-url`: the scheme of the API's transport and the
        /// address it is bound to, or, when bound to a wildcard address (`0.0.0.0`, `::`)
        /// that names no host, the host agents dial (`init --advertise`), which steps on
        /// those agents can reach too.
        public static func derived(boundHost: String, port: Int, tls: Bool, advertisedHost: String?) -> String {
            var host = boundHost
            if ["0.0.0.0", "::", "[::]", ""].contains(boundHost), let advertisedHost, !advertisedHost.isEmpty {
                host = advertisedHost
            }
            if host.contains(":"), !host.hasPrefix("[") { host = "[\(host)]" }
            return "\(tls ? "https" : "http")://\(host):\(port)"
        }
    }

    public let key: JobTokenKey
    private let endpoint = Mutex<Endpoint?>(nil)

    public init(key: JobTokenKey) {
        self.key = key
    }

    public func setEndpoint(_ value: Endpoint) {
        endpoint.withLock { $0 = value }
    }

    public var currentEndpoint: Endpoint? { endpoint.withLock { $0 } }

    /// `lease` with its token and the API's endpoint filled in.
    public func fill(_ lease: inout Gantry_V1_Lease) {
        lease.jobToken = JobToken(jobID: lease.jobID, attempt: lease.attempt).text(key: key)
        if let endpoint = currentEndpoint {
            lease.apiURL = endpoint.url
            lease.apiUsesCoordinatorCa = endpoint.usesCoordinatorCA
        }
    }

    /// The job and attempt behind `text`, if this coordinator issued it (the core still
    /// decides whether that attempt is held).
    public func verify(_ text: Substring) throws(JobTokenRefusal) -> JobToken {
        try JobToken.verify(text, key: key)
    }
}
