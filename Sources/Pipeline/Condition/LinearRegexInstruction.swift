/// One instruction of a compiled pattern, run by the Pike VM in `LinearRegex+Matcher`.
///
/// Targets are absolute indexes into the program; the compiler only emits targets inside
/// it, so the matcher never indexes out of bounds.
enum LinearRegexInstruction: Sendable, Equatable {
    /// Consume one scalar equal to this one. Under `i` the compiler stores the scalar's
    /// lowercase form and the matcher compares it with the input's lowercase form.
    case scalar(Unicode.Scalar)
    /// Consume one scalar in the set at this index of `LinearRegex.sets`.
    case set(Int)
    /// Continue at both targets (alternation, optional parts, loops). Only match or no
    /// match matters, so the order of the two carries no meaning.
    case split(Int, Int)
    case jump(Int)
    /// Continue only at the start of the text (`^`).
    case assertTextStart
    /// Continue only at the end of the text (`$`).
    case assertTextEnd
    /// The pattern matched.
    case match
}
