import Foundation
import GantryProtocol
import GantryTransferRules

/// What a push webhook says, from its JSON body (GitHub, Gitea, Forgejo and GitLab send
/// the same core: `ref`, `before`, `after`, and the repository's URLs), decoded on the
/// request's task, never on the core's single writer.
public struct PushEvent: Sendable, Equatable {
    public enum Target: Sendable, Equatable {
        case branch(String)
        case tag(String)
    }

    public var target: Target
    /// The commit pushed: 40 hex digits; all zeros when the ref was deleted.
    public var commit: String
    /// Every URL the payload gives for the repository (clone, ssh, web).
    public var repositoryURLs: [String]
    /// The head commit's message, bounded, if the payload has it.
    public var message: String?

    /// A deleted branch or tag: nothing to build.
    public var isDeletion: Bool { commit.allSatisfy { $0 == "0" } }

    public struct Malformed: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Longest message kept (the rest is cut).
    static let maximumMessageBytes = 4096

    private struct Payload: Decodable {
        struct Repository: Decodable {
            var clone_url: String?
            var ssh_url: String?
            var git_url: String?
            var html_url: String?
            var url: String?
            var git_http_url: String?
            var git_ssh_url: String?
            var homepage: String?
        }
        struct Commit: Decodable {
            var id: String?
            var message: String?
        }
        var ref: String?
        var after: String?
        var checkout_sha: String?
        var repository: Repository?
        var project: Repository?
        var head_commit: Commit?
        var commits: [Commit]?
    }

    public static func parse(_ body: [UInt8]) throws(Malformed) -> PushEvent {
        let payload: Payload
        do {
            payload = try JSONDecoder().decode(Payload.self, from: Data(body))
        } catch {
            throw Malformed(description: "the body is not a push event's JSON: \(error)")
        }
        guard let ref = payload.ref else { throw Malformed(description: "the push has no `ref`") }
        let target: Target
        if ref.hasPrefix("refs/heads/"), ref.utf8.count > "refs/heads/".utf8.count {
            target = .branch(String(ref.dropFirst("refs/heads/".count)))
        } else if ref.hasPrefix("refs/tags/"), ref.utf8.count > "refs/tags/".utf8.count {
            target = .tag(String(ref.dropFirst("refs/tags/".count)))
        } else {
            throw Malformed(description: "`ref` must be refs/heads/BRANCH or refs/tags/TAG, found `\(ref.logSafe(maximum: 200))`")
        }
        let name: String
        switch target {
        case .branch(let branch): name = branch
        case .tag(let tag): name = tag
        }
        guard name.utf8.count <= 255, !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw Malformed(description: "the ref name is longer than 255 bytes or has control characters")
        }
        // The commit: GitLab's `checkout_sha`, else the head commit's id, else `after`. For
        // an annotated tag `after` is the tag object, not the commit it names.
        guard let after = payload.checkout_sha ?? payload.head_commit?.id ?? payload.after, after.utf8.count == 40,
            after.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else { throw Malformed(description: "`after` must be a full commit id (40 lower-case hexadecimal digits)") }
        var urls: [String] = []
        for repository in [payload.repository, payload.project].compactMap({ $0 }) {
            urls += [
                repository.clone_url, repository.ssh_url, repository.git_url, repository.git_http_url, repository.git_ssh_url,
                repository.html_url, repository.url, repository.homepage,
            ].compactMap { $0 }.filter { !$0.isEmpty && $0.utf8.count <= RepositoryAddress.maximumBytes }
        }
        guard !urls.isEmpty else { throw Malformed(description: "the push names no repository URL") }
        let head = payload.head_commit ?? payload.commits?.last(where: { $0.id == after })
        // Control characters (a NUL would fail the submission) other than newlines and tabs go.
        let message = head?.message.map { text in
            String(decoding: Array(text.utf8.prefix(maximumMessageBytes)), as: UTF8.self).unicodeScalars
                .filter { $0.value >= 0x20 || $0 == "\n" || $0 == "\t" }.map(String.init).joined()
        }
        return PushEvent(target: target, commit: after, repositoryURLs: Array(urls.prefix(16)), message: message)
    }

    /// Whether the payload's repository is `repository`: one of its URLs names the same
    /// host and path (`location`), whatever the scheme, credentials or port: a push's
    /// `clone_url` (https) matches a project made with the ssh URL of the same repository.
    public func names(_ repository: RepositoryAddress) -> Bool {
        let wanted = Self.location(repository)
        return repositoryURLs.contains { url in
            (try? RepositoryAddress(parsing: url)).map(Self.location) == wanted
        }
    }

    /// `host/path` of a normalized address (scheme, userinfo and port dropped; the host is
    /// lower-cased and a trailing `/` or `.git` gone already), or the path of a local one.
    static func location(_ address: RepositoryAddress) -> String {
        var rest = Substring(address.normalized)
        if let scheme = rest.firstRange(of: "://") { rest = rest[scheme.upperBound...] }
        guard address.transport != .file else { return String(rest) }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<slash]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") { authority = authority[..<colon] }
        return String(authority) + String(rest[slash...])
    }
}
