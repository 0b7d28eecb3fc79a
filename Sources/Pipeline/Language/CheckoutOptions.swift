/// `checkout:`: whether and how the agent checks out the pipeline's repository at its
/// commit before the step's first command (docs/pipeline.md, "Checkout").
///
/// The default (no `checkout:` key, or `checkout: true`) is a full clone into the work dir.
/// Only a pipeline that names both a repository and a commit is checked out at all; the
/// options are the step's, carried in its lease (`CheckoutSpec`, field 17).
public struct CheckoutOptions: Sendable, Equatable, Codable {
    /// `checkout: false` turns it off for the step.
    public var enabled: Bool
    /// `depth: N`: only the last N commits (a shallow clone); 0 is the full history.
    public var depth: Int
    /// `submodules: true`: `git submodule update --init --recursive` after the checkout.
    public var submodules: Bool
    /// `path: src`: where inside the work dir, relative and normalized (`normalizedPath`);
    /// empty for the work dir itself.
    public var path: String

    public init(enabled: Bool = true, depth: Int = 0, submodules: Bool = false, path: String = "") {
        self.enabled = enabled
        self.depth = depth
        self.submodules = submodules
        self.path = path
    }

    /// What a step without `checkout:` gets.
    public static let `default` = CheckoutOptions()
    /// `checkout: false`.
    public static let disabled = CheckoutOptions(enabled: false)

    /// `depth` is at most this: a shallow clone is for large histories, and a depth
    /// beyond any real history is a full clone spelled badly.
    public static let maximumDepth = 1_000_000
    /// `path` is at most this many bytes and segments.
    public static let maximumPathBytes = 255
    public static let maximumPathSegments = 16

    /// `path` made canonical, or why it is refused. Relative to the work dir; `./` and `.`
    /// segments and one trailing `/` are dropped; absolute paths, `..`, empty segments
    /// (`a//b`), `.git` segments, backslashes and control characters are refused, so the
    /// checkout can land nowhere but inside the work dir.
    public static func normalizedPath(_ text: String) -> Result<String, PathProblem> {
        if text.isEmpty { return .success("") }
        guard text.utf8.count <= maximumPathBytes else { return .failure(.tooLong(text.utf8.count)) }
        guard !text.hasPrefix("/") else { return .failure(.absolute) }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "\\" }) else {
            return .failure(.character)
        }
        var segments = text.split(separator: "/", omittingEmptySubsequences: false)
        if segments.count > 1, segments.last?.isEmpty == true { segments.removeLast() }
        var kept: [Substring] = []
        for segment in segments {
            switch segment {
            case ".": continue
            case "": return .failure(.emptySegment)
            case "..": return .failure(.parent)
            default:
                if segment.lowercased() == ".git" { return .failure(.gitDirectory) }
                kept.append(segment)
            }
        }
        guard kept.count <= maximumPathSegments else { return .failure(.tooDeep(kept.count)) }
        return .success(kept.joined(separator: "/"))
    }

    /// Why a `checkout.path` is refused.
    public enum PathProblem: Error, Sendable, Equatable, CustomStringConvertible {
        case tooLong(Int)
        case tooDeep(Int)
        case absolute
        case parent
        case emptySegment
        case gitDirectory
        case character

        public var description: String {
            switch self {
            case .tooLong(let bytes): return "is \(bytes) bytes long; the limit is \(CheckoutOptions.maximumPathBytes)"
            case .tooDeep(let count):
                return "has \(count) segments; the limit is \(CheckoutOptions.maximumPathSegments)"
            case .absolute: return "must be relative to the work dir, not absolute"
            case .parent: return "must stay inside the work dir: `..` is not allowed"
            case .emptySegment: return "has an empty segment (`//`)"
            case .gitDirectory: return "must not name a `.git` directory"
            case .character: return "contains a control character or a backslash"
            }
        }
    }
}
