/// One token of an `if:` expression, with the scalar offset where it starts.
///
/// Offsets here count Unicode scalars, what the lexer walks; `ConditionParser` converts
/// them to Character offsets only when it reports an error.
struct ConditionToken: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// A name as written: `branch`, `env.NAME`, `true`, `false`, or an unknown one
        /// (the parser decides, so it can say which names it knows).
        case identifier(String)
        /// A string literal, escapes already resolved.
        case string(String)
        /// A regex literal: the raw pattern between the slashes (escapes are the regex
        /// parser's business), where the pattern starts, and whether it had the `i` flag.
        case regex(pattern: String, patternOffset: Int, caseInsensitive: Bool)
        case and, or, not
        case equal, notEqual, matches, notMatches
        case leftParenthesis, rightParenthesis
        case end
    }

    var kind: Kind
    var offset: Int

    /// How the token is shown in "found …" messages.
    var shown: String {
        switch kind {
        case .identifier(let name): "`\(name)`"
        case .string: "a string"
        case .regex: "a regex"
        case .and: "`&&`"
        case .or: "`||`"
        case .not: "`!`"
        case .equal: "`==`"
        case .notEqual: "`!=`"
        case .matches: "`=~`"
        case .notMatches: "`!~`"
        case .leftParenthesis: "`(`"
        case .rightParenthesis: "`)`"
        case .end: "the end of the condition"
        }
    }
}
