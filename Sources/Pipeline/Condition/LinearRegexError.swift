/// Why a pattern was refused, and where.
///
/// `offset` counts Unicode scalars from the start of the pattern (the text between the
/// slashes), because that is what the regex parser walks; `ConditionParser` turns it into
/// a Character offset in the whole expression before a user sees it.
struct LinearRegexError: Error, Sendable, Equatable, CustomStringConvertible {
    var offset: Int
    var message: String

    var description: String { "at \(offset): \(message)" }
}
