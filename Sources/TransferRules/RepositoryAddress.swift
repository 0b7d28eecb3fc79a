/// The syntax of a pipeline's `repository`: which git transport it names.
///
/// The URL comes from whoever submitted the pipeline, and git reads far more than network
/// addresses: `ext::sh -c …` runs a command, `fd::` talks to a descriptor, a plain path or
/// `file://` reads any repository the agent's user can read on the host. Checked twice
/// with this one rule: by the coordinator when a pipeline is submitted, so a URL no agent
/// would accept is refused with the submission instead of failing every step's checkout;
/// and by the agent before git sees it (`RepositoryURL`, which also decides whether this
/// agent reads local repositories).
public struct RepositoryAddress: Sendable, Equatable {
    public enum Transport: String, Sendable {
        case https, http, ssh, git, file
    }

    /// Why a URL was refused, as a phrase that follows the URL (the caller names the URL
    /// its own way: the agent with credentials redacted, the coordinator not at all).
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// As submitted (and as given to git).
    public let text: String
    public let transport: Transport
    /// Scheme and host lower-cased, one trailing `/` and `.git` dropped: two spellings of
    /// one repository share a mirror. Credentials in the URL are kept, so a pipeline
    /// without them never reads a mirror filled with someone else's.
    public let normalized: String
    /// The URL's `user[:password]` (without `@`), empty for none.
    public let userinfo: String

    public static let maximumBytes = 2048

    /// Accepts `https`, `http`, `ssh` (also `git+ssh`, and scp-style `user@host:path`),
    /// `git` and local repositories (`file://` or a path; whether an agent reads them is
    /// its own flag).
    public init(parsing text: String) throws(Refusal) {
        func refuse(_ why: String) -> Refusal { Refusal(description: why) }
        guard !text.isEmpty, text.utf8.count <= Self.maximumBytes else {
            throw refuse("must be 1 to \(Self.maximumBytes) bytes")
        }
        guard !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) else {
            throw refuse("contains whitespace or a control character")
        }
        // An argument git (or ssh) could read as an option.
        guard !text.hasPrefix("-") else { throw refuse("starts with `-`") }
        let transport: Transport
        var normalized: String
        var userinfo = ""
        if let schemeEnd = text.firstRange(of: "://") {
            let scheme = text[..<schemeEnd.lowerBound].lowercased()
            switch scheme {
            case "https": transport = .https
            case "http": transport = .http
            case "ssh", "git+ssh", "ssh+git": transport = .ssh
            case "git": transport = .git
            case "file": transport = .file
            default: throw refuse("uses `\(scheme.prefix(20))://`: only https, http, ssh and git are allowed")
            }
            let rest = text[schemeEnd.upperBound...]
            let authority = rest.prefix { $0 != "/" }
            let host = authority.split(separator: "@", omittingEmptySubsequences: false).last ?? ""
            if transport != .file {
                guard !host.isEmpty else { throw refuse("has no host") }
                guard !host.hasPrefix("-") else { throw refuse("has a host starting with `-`") }
            }
            userinfo = authority.count > host.count ? String(authority.dropLast(host.count)) : ""
            normalized = "\(transport.rawValue)://\(userinfo)\(host.lowercased())\(rest.dropFirst(authority.count))"
        } else if text.contains("::") {
            // `<helper>::<address>`: git runs `git-remote-<helper>` (`ext::` runs a shell).
            throw refuse("names a git remote helper (`…::`), which could run commands: only https, http, ssh and git are allowed")
        } else if let colon = text.firstIndex(of: ":"), !text[..<colon].contains("/") {
            // scp-style `[user@]host:path`, which git reads as ssh.
            let authority = text[..<colon]
            let host = authority.split(separator: "@", omittingEmptySubsequences: false).last ?? ""
            guard !host.isEmpty, !host.hasPrefix("-") else { throw refuse("has an empty host or one starting with `-`") }
            guard text.index(after: colon) < text.endIndex else { throw refuse("has no path") }
            transport = .ssh
            userinfo = authority.count > host.count ? String(authority.dropLast(host.count)) : ""
            normalized = "ssh://\(userinfo)\(host.lowercased())/\(text[text.index(after: colon)...])"
        } else {
            // A local path: git reads it as `file://`.
            transport = .file
            normalized = "file://\(text)"
        }
        if normalized.hasSuffix("/") { normalized.removeLast() }
        if normalized.hasSuffix(".git") { normalized.removeLast(4) }
        self.text = text
        self.transport = transport
        self.normalized = normalized
        self.userinfo = userinfo.hasSuffix("@") ? String(userinfo.dropLast()) : userinfo
    }
}
