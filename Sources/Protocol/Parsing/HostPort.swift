/// A `HOST:PORT` address, as every command line and state file of Gantry spells one:
/// `ci.example.com:7070`, `10.0.0.5:7070`, or an IPv6 literal in brackets, `[::1]:7070`.
/// The one parser for all of them (agent `--coordinator`, the enrolled address in
/// `agent.json`, coordinator `--listen`, `--http` and `--advertise`).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// A name or an IP literal, without brackets.
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` or `[IPV6]:PORT`. The port is 1 to 65535, or 0 too when
    /// `allowingPortZero` (a listener's "pick a free port"). Refused, with the reason:
    /// a missing host or port, a port out of range or not all digits, an IPv6 address
    /// without brackets (`::1:7070` is ambiguous), whitespace or control characters.
    public init(parsing text: String, allowingPortZero: Bool = false) throws(HostPortError) {
        func fail(_ why: String) -> HostPortError { HostPortError(text: text, problem: why) }
        guard !text.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F })
        else { throw fail("it contains whitespace or control characters") }
        let host: Substring
        let digits: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw fail("brackets must enclose the whole host, as in [::1]:7070") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else {
                throw fail(rest.isEmpty ? "there is no ':PORT'" : "brackets must enclose the whole host, as in [::1]:7070")
            }
            digits = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw fail("there is no ':PORT'") }
            host = text[..<colon]
            digits = text[text.index(after: colon)...]
            if host.contains(":") { throw fail("an IPv6 address needs brackets, as in [::1]:7070") }
        }
        guard !host.contains("["), !host.contains("]") else { throw fail("brackets must enclose the whole host, as in [::1]:7070") }
        guard !host.isEmpty else { throw fail("the host is missing") }
        guard !digits.isEmpty else { throw fail("the port is missing") }
        guard digits.count <= 5, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let port = Int(digits), port <= 65535
        else { throw fail("the port must be a number from \(allowingPortZero ? 0 : 1) to 65535") }
        guard port > 0 || allowingPortZero else { throw fail("the port must be a number from 1 to 65535") }
        self.init(host: String(host), port: port)
    }

    /// `host:port`, with brackets around an IPv6 literal: what `init(parsing:)` reads back.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct HostPortError: Error, Sendable, Equatable, CustomStringConvertible {
    public var text: String
    public var problem: String

    public var description: String { "'\(text)' is not HOST:PORT: \(problem)" }
}
