import GantryProtocol

/// What one lease asks to check out, every value checked again on the agent (a lease is
/// from the coordinator, but its repository, commit and options are from whoever
/// submitted the pipeline): the repository (`RepositoryURL`), the commit as a name git
/// cannot read as an option, and the options of `checkout:`.
public struct CheckoutRequest: Sendable, Equatable {
    public var repository: RepositoryURL
    /// A full or abbreviated commit id, or a ref name (`main`, `refs/tags/v1`), resolved
    /// in the mirror to the full commit id that is checked out and verified.
    public var commit: String
    /// 0: the whole history.
    public var depth: Int
    public var submodules: Bool
    /// Relative to the work dir, normalized; empty for the work dir itself.
    public var path: String

    public static let maximumDepth: UInt32 = 1_000_000
    public static let maximumCommitBytes = 255

    /// The request of a lease's `repository`, `commit` and `checkout` (field 17), nil when
    /// it asks for none (no `checkout`, `enabled` false, or no repository or commit), or
    /// why it cannot be honoured.
    public static func from(
        repository: String, commit: String, checkout: Gantry_V1_CheckoutSpec?, allowFileURLs: Bool
    ) -> Result<CheckoutRequest, CheckoutFailure>? {
        guard let checkout, checkout.enabled, !repository.isEmpty, !commit.isEmpty else { return nil }
        do throws(CheckoutFailure) {
            let url = try RepositoryURL(parsing: repository, allowFile: allowFileURLs)
            let commit = try checkedCommit(commit)
            guard checkout.depth <= maximumDepth else {
                throw CheckoutFailure("checkout depth \(checkout.depth) is over the limit of \(maximumDepth)")
            }
            let path = try checkedPath(checkout.path)
            return .success(
                CheckoutRequest(
                    repository: url, commit: commit, depth: Int(checkout.depth), submodules: checkout.submodules,
                    path: path))
        } catch {
            return .failure(error)
        }
    }

    /// `commit` if it is a hex id or a plausible ref name: printable ASCII without spaces,
    /// `..`, `@{`, `\`, `~`, `^`, `:`, `?`, `*` or `[` (git's own ref rules, and nothing a
    /// revision parser would read as an expression), not starting with `-` or `/`.
    static func checkedCommit(_ commit: String) throws(CheckoutFailure) -> String {
        let shown = commit.count > 80 ? String(commit.prefix(80)) + "…" : commit
        guard commit.utf8.count <= maximumCommitBytes else {
            throw CheckoutFailure("the commit is longer than \(maximumCommitBytes) bytes")
        }
        let forbidden: Set<UInt8> = Set("~^:?*[\\".utf8)
        guard !commit.isEmpty, !commit.hasPrefix("-"), !commit.hasPrefix("/"), !commit.hasSuffix("/"), !commit.hasSuffix("."),
            !commit.contains(".."), !commit.contains("@{"), !commit.contains("//"),
            commit.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !forbidden.contains($0) })
        else {
            throw CheckoutFailure("`\(shown.logSafe(maximum: 100))` is not a commit id or a ref name")
        }
        return commit
    }

    /// Whether `commit` is a full commit id (SHA-1 or SHA-256): one the mirror can be
    /// asked about without a fetch, because no push can move it.
    static func isFullCommitID(_ commit: String) -> Bool {
        (commit.utf8.count == 40 || commit.utf8.count == 64) && commit.utf8.allSatisfy { isHexDigit($0) }
    }

    static func isHexDigit(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
    }

    /// The same rules as the pipeline's `checkout.path` (`CheckoutOptions.normalizedPath`
    /// in GantryPipeline, which the agent does not link), applied again here.
    static func checkedPath(_ path: String) throws(CheckoutFailure) -> String {
        func refuse(_ why: String) -> CheckoutFailure {
            CheckoutFailure("the checkout path `\(path.logSafe(maximum: 100))` \(why)")
        }
        guard path.utf8.count <= 255 else { throw refuse("is longer than 255 bytes") }
        guard !path.hasPrefix("/") else { throw refuse("is absolute") }
        guard !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "\\" }) else {
            throw refuse("contains a control character or a backslash")
        }
        var kept: [Substring] = []
        var segments = path.split(separator: "/", omittingEmptySubsequences: false)
        if segments.count > 1, segments.last?.isEmpty == true { segments.removeLast() }
        for segment in segments where !(segment == "." || (segment.isEmpty && segments.count == 1)) {
            guard !segment.isEmpty else { throw refuse("has an empty segment") }
            guard segment != ".." else { throw refuse("leaves the work dir") }
            guard segment.lowercased() != ".git" else { throw refuse("names a .git directory") }
            kept.append(segment)
        }
        guard kept.count <= 16 else { throw refuse("has more than 16 segments") }
        return kept.joined(separator: "/")
    }
}
