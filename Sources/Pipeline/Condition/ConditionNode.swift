/// A checked `if:` expression: the parser's output, already typed, so evaluation cannot
/// meet a regex where a string belongs or an unknown variable.
///
/// `&&` and `||` chains are flat lists rather than nested pairs, so the tree is only as
/// deep as the parentheses and `!`s (≤ `ConditionLimits.maximumNestingDepth`), however
/// many operands a chain has; the evaluator recurses along that depth only.
indirect enum ConditionNode: Sendable {
    case constant(Bool)
    /// A string-valued operand in a boolean position: true when non-empty.
    case nonEmpty(ConditionValue)
    /// `==` (or `!=` when `negated`), compared exactly, scalar by scalar.
    case equal(ConditionValue, ConditionValue, negated: Bool)
    /// `=~` (or `!~` when `negated`).
    case matches(ConditionValue, LinearRegex, negated: Bool)
    case not(ConditionNode)
    /// `&&`: true when every operand is, evaluated left to right, stopping at a false one.
    case all([ConditionNode])
    /// `||`: true when any operand is, evaluated left to right, stopping at a true one.
    case any([ConditionNode])

    func evaluate(_ context: ConditionContext) -> Bool {
        switch self {
        case .constant(let value):
            return value
        case .nonEmpty(let value):
            return !value.resolve(context).isEmpty
        case .equal(let left, let right, let negated):
            // UTF-8 bytes, not `String.==`: Swift's equality applies Unicode canonical
            // equivalence, under which a branch `café` spelled with a combining accent
            // would equal a protected `café` spelled with `é`; git tells them apart.
            return left.resolve(context).utf8.elementsEqual(right.resolve(context).utf8) != negated
        case .matches(let value, let regex, let negated):
            return regex.matches(value.resolve(context)) != negated
        case .not(let operand):
            return !operand.evaluate(context)
        case .all(let operands):
            return operands.allSatisfy { $0.evaluate(context) }
        case .any(let operands):
            return operands.contains { $0.evaluate(context) }
        }
    }
}

extension ConditionNode {
    /// An upper bound on the regex steps `evaluate` may take for `context`: each regex's
    /// instruction count times the scalars it scans (plus one), summed over every regex
    /// as if none were short-circuited. Comparisons are linear in their text and far
    /// cheaper; they are not counted.
    func cost(_ context: ConditionContext) -> Int {
        switch self {
        case .constant, .nonEmpty, .equal:
            return 0
        case .matches(let value, let regex, _):
            return regex.program.count.multipliedReportingOverflow(
                by: value.resolve(context).unicodeScalars.count + 1).partialValue
        case .not(let operand):
            return operand.cost(context)
        case .all(let operands), .any(let operands):
            return operands.reduce(0) { $0 &+ $1.cost(context) }
        }
    }
}

/// A string-valued operand: a variable or a string literal.
enum ConditionValue: Sendable {
    case variable(ConditionVariable)
    case literal(String)

    func resolve(_ context: ConditionContext) -> String {
        switch self {
        case .variable(let variable): variable.value(in: context)
        case .literal(let text): text
        }
    }
}
