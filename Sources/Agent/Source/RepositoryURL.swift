import Crypto

/// A pipeline's `repository`, checked before git sees it.
///
/// The URL comes from whoever submitted the pipeline, and git reads far more than network
/// addresses: `ext::sh -c …` runs a command, `fd::` talks to a descriptor, a plain path or
/// `file://` reads any repository the agent's user can read on the host (another
/// pipeline's mirror among them). So only `https`, `http`, `ssh` (also scp-style
/// `user@host:path`) and `git` are accepted, and local repositories only on an agent
/// started with `--git-allow-file-urls`. git enforces the same list again through
/// `GIT_ALLOW_PROTOCOL` (`GitEnvironment`), for submodules too, which never get local
/// repositories.
public struct RepositoryURL: Sendable, Equatable {
    public enum Transport: String, Sendable {
        case https, http, ssh, git, file
    }

    /// As submitted (and as given to git).
    public let text: String
    public let transport: Transport
    /// Scheme and host lower-cased, one trailing `/` and `.git` dropped: two spellings of
    /// one repository share a mirror. Credentials in the URL are kept, so a pipeline
    /// without them never reads a mirror filled with someone else's.
    public let normalized: String
    /// The URL's `user[:password]` (without `@`), empty for none: what
    /// `URLUserinfo.redacted` takes out of git's output wherever git prints it.
    public let userinfo: String

    public static let maximumBytes = 2048

    public init(parsing text: String, allowFile: Bool) throws(CheckoutFailure) {
        func refuse(_ why: String) -> CheckoutFailure {
            .init("the repository URL \(Self.redacted(text)) \(why)")
        }
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
        guard transport != .file || allowFile else {
            throw refuse(
                "is a local repository: this agent reads local repositories only when started with --git-allow-file-urls")
        }
        if normalized.hasSuffix("/") { normalized.removeLast() }
        if normalized.hasSuffix(".git") { normalized.removeLast(4) }
        self.text = text
        self.transport = transport
        self.normalized = normalized
        self.userinfo = userinfo.hasSuffix("@") ? String(userinfo.dropLast()) : userinfo
    }

    /// The mirror's directory name: the SHA-256 of `normalized`, so a URL (and the
    /// credentials in it) never becomes a path, and every slot of the host finds the same
    /// mirror for the same repository.
    public var mirrorName: String {
        SHA256.hash(data: Array(normalized.utf8)).map { byte in
            let digits = Array("0123456789abcdef".utf8)
            return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]], as: UTF8.self)
        }.joined() + ".git"
    }

    /// The URL for logs: a password or token in it (`https://user:token@host/…`,
    /// `https://token@host/…`) is replaced by `***`.
    public var redacted: String { Self.redacted(text) }

    static func redacted(_ text: String) -> String {
        URLUserinfo.redacted(in: text.count > 300 ? String(text.prefix(300)) + "…" : text)
    }
}
