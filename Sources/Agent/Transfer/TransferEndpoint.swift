import NIOCore

/// The API as `Lease.api_url` names it, split for a raw HTTP/1.1 client:
/// `http(s)://HOST[:PORT][/PATH]`. No user info, query or fragment: an API URL that has
/// them is a mistake the agent reports rather than guesses about.
public struct TransferEndpoint: Sendable, Equatable {
    public var secure: Bool
    public var host: String
    public var port: Int
    /// `""` or `/prefix`, without a trailing `/`; every route path is appended to it.
    public var basePath: String

    public init(apiURL: String) throws(TransferError) {
        var rest = Substring(apiURL)
        if rest.hasPrefix("https://") {
            secure = true
            rest = rest.dropFirst("https://".count)
        } else if rest.hasPrefix("http://") {
            secure = false
            rest = rest.dropFirst("http://".count)
        } else {
            throw .invalidAPIURL("it must start with http:// or https://")
        }
        guard rest.utf8.count <= 2048, !rest.contains(where: { $0 == "@" || $0 == "?" || $0 == "#" || $0.isWhitespace })
        else { throw .invalidAPIURL("it must be http(s)://HOST[:PORT][/PATH] without user, query or fragment") }
        let authority = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(authority.count))
        while path.hasSuffix("/") { path.removeLast() }
        basePath = path
        var hostPart = authority
        var portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidAPIURL("unterminated IPv6 address") }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidAPIURL("unexpected text after the IPv6 address") }
                portPart = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { throw .invalidAPIURL("no host") }
        host = String(hostPart)
        if let portPart {
            guard let number = Int(portPart), (1...65535).contains(number) else { throw .invalidAPIURL("bad port") }
            port = number
        } else {
            port = secure ? 443 : 80
        }
    }

    /// The `Host` header: the name, and the port unless it is the scheme's default.
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (secure ? 443 : 80) ? name : "\(name):\(port)"
    }
}
