/// A variable of the expression language, resolved when the expression is parsed so an
/// unknown name is a syntax error and evaluation is a plain field read.
enum ConditionVariable: Sendable, Equatable {
    case branch, tag, commit, message, source
    /// `env.NAME`: the pipeline's environment; a missing name is "".
    case env(String)

    /// The names as users write them, for "unknown variable" messages.
    static let knownNames = "`branch`, `tag`, `commit`, `message`, `source` and `env.NAME`"

    /// The variable an identifier names, nil if none. `env.NAME` needs a NAME of ASCII
    /// letters, digits and `_` (other names cannot be written in an expression).
    init?(_ name: String) {
        switch name {
        case "branch": self = .branch
        case "tag": self = .tag
        case "commit": self = .commit
        case "message": self = .message
        case "source": self = .source
        default:
            guard name.hasPrefix("env.") else { return nil }
            let variable = name.dropFirst(4)
            guard !variable.isEmpty, variable.unicodeScalars.allSatisfy(ConditionLexer.isIdentifierScalar) else { return nil }
            self = .env(String(variable))
        }
    }

    func value(in context: ConditionContext) -> String {
        switch self {
        case .branch: context.branch
        case .tag: context.tag
        case .commit: context.commit
        case .message: context.message
        case .source: context.source
        case .env(let name): context.env[name] ?? ""
        }
    }
}
