/// Why a pattern was refused, and where.
///
/// Offsets count Unicode scalars from the start of the pattern (the text between the
/// slashes), because that is what the regex parser walks; `ConditionParser` turns them
/// into Character columns of the whole expression before a user sees them, which is why
/// the place an unclosed `(` or `[` was opened is a field and not part of `message`.
struct LinearRegexError: Error, Sendable, Equatable, CustomStringConvertible {
    var offset: Int
    var message: String
    /// Where the group or class that `message` says is unclosed was opened.
    var opener: Int?

    init(offset: Int, message: String, opener: Int? = nil) {
        self.offset = offset
        self.message = message
        self.opener = opener
    }

    var description: String { "at \(offset): \(message)" + (opener.map { " at \($0)" } ?? "") }
}
