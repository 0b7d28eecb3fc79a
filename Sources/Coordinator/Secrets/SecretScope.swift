import GantryPipeline

/// Which steps a secret is for. A step gets, for each name it lists in `secrets:`, the
/// value of the most specific scope that applies to it (`precedence`):
///
/// - `environment:NAME`: only steps with `environment: NAME`;
/// - `repository:URL`: only steps of pipelines submitted with exactly that repository
///   (`gantry run --repository URL`), which is what the issue calls "project" until
///   projects exist;
/// - `pipeline`: any step that names it.
public enum SecretScope: Hashable, Sendable, CustomStringConvertible {
    case pipeline
    case repository(String)
    case environment(String)

    /// Longest `repository:` URL, the bound `SubmissionCheck` puts on a submission's
    /// repository (a longer one could never match).
    static let maximumRepositoryBytes = 2048

    /// Parses `pipeline`, `repository:URL` or `environment:NAME`.
    public init(parsing text: String) throws(SecretRuleError) {
        if text == "pipeline" {
            self = .pipeline
        } else if text.hasPrefix("environment:") {
            let name = String(text.dropFirst("environment:".count))
            guard PipelineParser.isValidEnvironmentName(name) else {
                throw .invalidScope("`environment:` needs 1-63 ASCII letters, digits, `.`, `_` or `-` after it")
            }
            self = .environment(name)
        } else if text.hasPrefix("repository:") {
            let url = String(text.dropFirst("repository:".count))
            guard !url.isEmpty, url.utf8.count <= Self.maximumRepositoryBytes,
                !url.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
            else {
                throw .invalidScope(
                    "`repository:` needs the repository exactly as pipelines are submitted with it (`--repository`), "
                        + "at most \(Self.maximumRepositoryBytes) bytes without control characters")
            }
            self = .repository(url)
        } else if text.hasPrefix("project:") {
            throw .invalidScope(
                "projects do not exist yet: use `repository:URL` for a secret only pipelines submitted with that "
                    + "repository get, or `pipeline` for every pipeline")
        } else {
            throw .invalidScope("expected `pipeline`, `repository:URL` or `environment:NAME`")
        }
    }

    /// The stored and displayed form, which `init(parsing:)` reads back.
    public var description: String {
        switch self {
        case .pipeline: return "pipeline"
        case .repository(let url): return "repository:\(url)"
        case .environment(let name): return "environment:\(name)"
        }
    }

    /// The scopes that apply to a step, most specific first: the first one holding a
    /// secret wins, so a production value overrides the repository's, which overrides the
    /// pipeline-wide default.
    public static func precedence(repository: String, environment: String?) -> [SecretScope] {
        var scopes: [SecretScope] = []
        if let environment { scopes.append(.environment(environment)) }
        if !repository.isEmpty { scopes.append(.repository(repository)) }
        scopes.append(.pipeline)
        return scopes
    }
}
