import Foundation
import GantryProtocol

/// The rules a notification URL obeys, checked when it is registered and again (the
/// private-address part) before every attempt.
///
/// SSRF: the coordinator makes requests to URLs an admin typed, from inside the network
/// it runs in. The feature is admin-only, redirects are never followed, and by default a
/// target that is or resolves to a loopback, private, link-local (cloud metadata at
/// 169.254.169.254), unique-local or unspecified address is refused
/// (`serve --notification-allow-private` lifts that, for receivers on the same network
/// and for tests). The resolved-address check runs before each attempt but the HTTP
/// client resolves again when it connects, so a DNS answer that changes in between (DNS
/// rebinding) is not caught: docs/security.md says so.
public enum NotificationURL {
    public static let maximumLength = 2048

    public struct Invalid: Error, CustomStringConvertible, Sendable, Equatable {
        public var description: String
    }

    /// The URL's host, once checked: http or https, no user info, no spaces, bounded.
    public static func check(_ text: String, allowPrivate: Bool) throws(Invalid) -> URLComponents {
        guard text.utf8.count <= maximumLength, !text.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw Invalid(description: "the URL must be at most \(maximumLength) bytes without spaces")
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else {
            throw Invalid(description: "the URL must be http:// or https:// with a host")
        }
        guard components.user == nil, components.password == nil else {
            throw Invalid(description: "the URL must not carry a user or password: the signature authenticates the sender")
        }
        if !allowPrivate, isPrivate(host: host) {
            throw Invalid(
                description: "\(host.logSafe(maximum: 80)) is a loopback, private or link-local address: refused unless the "
                    + "coordinator runs with --notification-allow-private")
        }
        return components
    }

    /// A host name that names a private target by itself: `localhost` or an address
    /// literal in a private range. A name that resolves to one is caught by `resolvesPrivate`.
    public static func isPrivate(host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let lower = bare.lowercased()
        if lower == "localhost" || lower.hasSuffix(".localhost") { return true }
        if let v4 = ipv4(lower) { return isPrivate(v4: v4) }
        if lower.contains(":") { return isPrivate(v6: lower) }
        return false
    }

    static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    static func isPrivate(v4 b: [UInt8]) -> Bool {
        switch (b[0], b[1]) {
        case (0, _), (10, _), (127, _): return true
        case (169, 254): return true
        case (172, 16...31): return true
        case (192, 168): return true
        case (100, 64...127): return true  // carrier-grade NAT
        default: return b[0] >= 224  // multicast and reserved
        }
    }

    static func isPrivate(v6 text: String) -> Bool {
        if text == "::1" || text == "::" { return true }
        if text.hasPrefix("fe8") || text.hasPrefix("fe9") || text.hasPrefix("fea") || text.hasPrefix("feb") { return true }
        if text.hasPrefix("fc") || text.hasPrefix("fd") { return true }
        if text.hasPrefix("::ffff:"), let v4 = ipv4(String(text.dropFirst(7))) { return isPrivate(v4: v4) }
        return false
    }

    /// Whether any address `host` resolves to is private. Blocking (getaddrinfo): called
    /// off the cooperative pool.
    static func resolvesPrivate(host: String) -> Bool {
        if isPrivate(host: host) { return true }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return false }
        defer { freeaddrinfo(first) }
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let address = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if isPrivate(host: address.split(separator: "%").first.map(String.init) ?? address) { return true }
            }
            cursor = entry.pointee.ai_next
        }
        return false
    }
}
