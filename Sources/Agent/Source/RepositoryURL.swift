import Crypto
import GantryTransferRules

/// A pipeline's `repository`, checked before git sees it: the syntax of
/// `RepositoryAddress` (the coordinator checked the same at submission; an agent checks
/// again, as it trusts no lease), and local repositories only on an agent started with
/// `--git-allow-file-urls`. git enforces the transport list again through
/// `GIT_ALLOW_PROTOCOL` (`GitEnvironment`), for submodules too, which never get local
/// repositories.
public struct RepositoryURL: Sendable, Equatable {
    public typealias Transport = RepositoryAddress.Transport

    public let address: RepositoryAddress
    /// As submitted (and as given to git).
    public var text: String { address.text }
    public var transport: Transport { address.transport }
    /// See `RepositoryAddress.normalized`: what names the mirror.
    public var normalized: String { address.normalized }
    /// The URL's `user[:password]`: what `URLUserinfo.redacted` takes out of git's output
    /// wherever git prints it.
    public var userinfo: String { address.userinfo }

    public static let maximumBytes = RepositoryAddress.maximumBytes

    public init(parsing text: String, allowFile: Bool) throws(CheckoutFailure) {
        do {
            address = try RepositoryAddress(parsing: text)
        } catch {
            throw CheckoutFailure("the repository URL \(Self.redacted(text)) \(error.description)")
        }
        guard address.transport != .file || allowFile else {
            throw CheckoutFailure(
                "the repository URL \(Self.redacted(text)) is a local repository: this agent reads local repositories only "
                    + "when started with --git-allow-file-urls")
        }
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

    /// The URL without its `user[:password]@`: what a work tree, which later attempts of
    /// other pipelines of the same repository mount, keeps as its origin.
    public var withoutCredentials: String {
        var text = self.text
        guard !userinfo.isEmpty, let range = text.firstRange(of: userinfo + "@") else { return text }
        text.removeSubrange(range)
        return text
    }

    static func redacted(_ text: String) -> String {
        URLUserinfo.redacted(in: text.count > 300 ? String(text.prefix(300)) + "…" : text)
    }
}
