/// What the dashboard needs to know of how the API is served.
public struct DashboardSettings: Sendable {
    /// The API is served over TLS: session cookies get `Secure`, so a browser never sends
    /// them over plain HTTP.
    public var secureCookies: Bool

    public init(secureCookies: Bool) {
        self.secureCookies = secureCookies
    }
}
