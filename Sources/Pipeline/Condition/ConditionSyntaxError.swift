/// Why an `if:` expression was refused, and where.
///
/// `offset` counts Characters from the start of the expression text (0-based), so the
/// pipeline parser can add it to the column where the YAML scalar starts (for a plain or
/// quoted one-line scalar); messages that refer to another place say "column N", 1-based
/// in the same text. Parse errors, type errors and exceeded limits are all this one error:
/// every problem is found before the pipeline is stored.
public struct ConditionSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 0-based offset in Characters into the expression text, where the problem is.
    public var offset: Int
    /// What was expected, e.g. "expected `)` to close the `(` at column 3".
    public var message: String

    public init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }

    public var description: String { "column \(offset + 1): \(message)" }
}
