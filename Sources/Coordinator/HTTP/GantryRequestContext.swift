import Hummingbird
import NIOCore

/// The request context of the coordinator's API: who is calling (set by
/// `AuthenticationMiddleware`), from where, and what the handler wants audited.
public struct GantryRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// Nil only before authentication and on `/healthz`.
    public var principal: Principal?
    /// The dashboard session's CSRF token, set on the dashboard's pages for their forms
    /// and scripts; nil elsewhere.
    public var csrf: String?
    /// Filled by a handler with the object it acted on and details worth recording; the
    /// route wrapper writes the audit record from it after the handler returns.
    public let audit = AuditNote()

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// The caller's IP address as text, for the audit log.
    public var remoteAddressText: String? {
        remoteAddress?.ipAddress
    }
}

extension GantryRequestContext {
    /// A path parameter, percent-decoded: Hummingbird hands over the raw segment, and a
    /// client that encodes `alice@corp.com` as `alice%40corp.com` (as the CLI does) must
    /// reach the same identity. A segment that does not decode is refused.
    public func parameter(_ name: String) throws -> String {
        let raw = try parameters.require(name)
        guard let decoded = raw.removingPercentEncoding else {
            throw HTTPError(.badRequest, message: "path parameter \(name) is not valid percent-encoding")
        }
        return decoded
    }
}
