/// A parsed pattern, before compilation: the parser's output and the compiler's input.
///
/// There are no capture groups: a condition only asks whether a pattern matches, so `( )`
/// and `(?: )` both just group. Counted repeats stay counted here (`repeating(x, 2, 5)`)
/// and are expanded only by the compiler, after the parser has checked what the expansion
/// would cost without performing it.
indirect enum LinearRegexNode: Sendable, Equatable {
    /// Matches the empty string (`()`, an empty alternative, `x{0}`).
    case empty
    /// One scalar, exactly (or any case variant of it under `i`).
    case scalar(Unicode.Scalar)
    /// `.`, a class or a shorthand.
    case set(LinearRegexScalarSet)
    /// `^`: the start of the whole text.
    case textStart
    /// `$`: the end of the whole text.
    case textEnd
    case concatenation([LinearRegexNode])
    case alternation([LinearRegexNode])
    /// `minimum` copies, then up to `maximum - minimum` optional ones; `maximum == nil`
    /// means unbounded (`*`, `+`, `{m,}`).
    case repeating(LinearRegexNode, minimum: Int, maximum: Int?)
}
