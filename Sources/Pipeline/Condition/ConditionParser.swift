/// Parses `if:` tokens into a typed `ConditionNode`, by recursive descent over the grammar
/// in docs/pipeline.md ("The expression language"), loosest operator first:
///
///     condition   = disjunction
///     disjunction = conjunction { "||" conjunction }
///     conjunction = comparison { "&&" comparison }
///     comparison  = unary [ ( "==" | "!=" ) unary | ( "=~" | "!~" ) unary ]
///     unary       = "!" unary | primary
///     primary     = "(" disjunction ")" | variable | string | regex | "true" | "false"
///
/// Types are checked here, not at evaluation: `==` takes strings, `=~` a string and a
/// regex literal, and a regex is never a condition. So a condition that parses always
/// evaluates, and a mistake in a pipeline file is refused at submission with its offset
/// rather than silently skipping (or running) a step later.
struct ConditionParser {
    private let source: ConditionSource
    private let tokens: [ConditionToken]
    private var index = 0
    private var depth = 0
    private var regexLiterals = 0
    private var regexInstructions = 0

    init(source: ConditionSource, tokens: [ConditionToken]) {
        self.source = source
        self.tokens = tokens
    }

    /// What an operand turned out to be, before its position decides what it must be.
    private enum Operand {
        case value(ConditionValue)
        case condition(ConditionNode)
        case regex(LinearRegex)
    }

    private struct Parsed {
        var operand: Operand
        /// Scalar offset where the operand starts, for type errors.
        var offset: Int
        /// What to suggest when this condition is used where a string belongs.
        var hintAsString: String?
    }

    mutating func parse() throws(ConditionSyntaxError) -> ConditionNode {
        guard current.kind != .end else {
            throw error(
                at: current.offset,
                "the condition is empty: expected a variable, a comparison such as `branch == \"main\"`, `true` or `false`")
        }
        let parsed = try disjunction()
        switch current.kind {
        case .end:
            return try condition(parsed)
        case .rightParenthesis:
            throw error(at: current.offset, "unmatched `)`: there is no `(` before it")
        default:
            throw error(at: current.offset, "expected `&&`, `||` or the end of the condition, found \(current.shown)")
        }
    }

    // MARK: - Grammar

    private mutating func disjunction() throws(ConditionSyntaxError) -> Parsed {
        let first = try conjunction()
        guard current.kind == .or else { return first }
        var operands = [try condition(first)]
        while current.kind == .or {
            advance()
            operands.append(try condition(try conjunction()))
        }
        return Parsed(operand: .condition(.any(operands)), offset: first.offset)
    }

    private mutating func conjunction() throws(ConditionSyntaxError) -> Parsed {
        let first = try comparison()
        guard current.kind == .and else { return first }
        var operands = [try condition(first)]
        while current.kind == .and {
            advance()
            operands.append(try condition(try comparison()))
        }
        return Parsed(operand: .condition(.all(operands)), offset: first.offset)
    }

    private mutating func comparison() throws(ConditionSyntaxError) -> Parsed {
        let left = try unary()
        let operation = current
        let node: ConditionNode
        switch operation.kind {
        case .equal, .notEqual:
            advance()
            let right = try unary()
            let leftValue = try value(left, of: operation)
            let rightValue = try value(right, of: operation)
            node = .equal(leftValue, rightValue, negated: operation.kind == .notEqual)
        case .matches, .notMatches:
            advance()
            let right = try unary()
            let leftValue = try value(left, of: operation)
            guard case .regex(let regex) = right.operand else {
                var message = "\(operation.shown) needs a regex literal on its right, such as `/^release-/`"
                if case .value(.literal) = right.operand { message += ": write the pattern between slashes, not quotes" }
                throw error(at: right.offset, message)
            }
            node = .matches(leftValue, regex, negated: operation.kind == .notMatches)
        default:
            return left
        }
        switch current.kind {
        case .equal, .notEqual, .matches, .notMatches:
            throw error(
                at: current.offset,
                "comparisons cannot be chained: combine them with `&&` or `||`, and use parentheses to compare a result")
        default:
            return Parsed(operand: .condition(node), offset: left.offset)
        }
    }

    private mutating func unary() throws(ConditionSyntaxError) -> Parsed {
        guard current.kind == .not else { return try primary() }
        let token = current
        advance()
        try enter(token)
        let operand = try unary()
        depth -= 1
        return Parsed(
            operand: .condition(.not(try condition(operand))), offset: token.offset,
            hintAsString: "`!` applies to the operand right after it, before any comparison: write `!(a == b)`, or `a != b`")
    }

    private mutating func primary() throws(ConditionSyntaxError) -> Parsed {
        let token = current
        switch token.kind {
        case .leftParenthesis:
            advance()
            try enter(token)
            let inner = try disjunction()
            guard current.kind == .rightParenthesis else {
                throw error(
                    at: current.offset,
                    "expected `)` to close the `(` at column \(source.column(token.offset)), found \(current.shown)")
            }
            advance()
            depth -= 1
            return Parsed(operand: inner.operand, offset: token.offset, hintAsString: inner.hintAsString)
        case .identifier(let name):
            advance()
            if name == "true" || name == "false" {
                return Parsed(
                    operand: .condition(.constant(name == "true")), offset: token.offset,
                    hintAsString: "write `\"\(name)\"` in quotes to compare with the text \(name)")
            }
            if let variable = ConditionVariable(name) {
                return Parsed(operand: .value(.variable(variable)), offset: token.offset)
            }
            if name == "env" || name.hasPrefix("env.") {
                throw error(
                    at: token.offset,
                    "`\(name)` is not a variable: write `env.NAME`, where NAME is ASCII letters, digits and `_`")
            }
            throw error(at: token.offset, "unknown variable `\(name)`: the variables are \(ConditionVariable.knownNames)")
        case .string(let text):
            advance()
            return Parsed(operand: .value(.literal(text)), offset: token.offset)
        case .regex(let pattern, let patternOffset, let caseInsensitive):
            advance()
            return Parsed(
                operand: .regex(try regex(pattern, at: token.offset, patternOffset: patternOffset, caseInsensitive: caseInsensitive)),
                offset: token.offset)
        default:
            throw error(
                at: token.offset,
                "expected a variable, a string, a regex, `true`, `false`, `!` or `(`, found \(token.shown)")
        }
    }

    /// Compiles a regex literal within the expression's budgets, moving the regex
    /// parser's offsets (scalars into the pattern) to offsets into the expression.
    private mutating func regex(
        _ pattern: String, at offset: Int, patternOffset: Int, caseInsensitive: Bool
    ) throws(ConditionSyntaxError) -> LinearRegex {
        regexLiterals += 1
        guard regexLiterals <= ConditionLimits.maximumRegexLiterals else {
            throw error(
                at: offset, "the condition has more than \(ConditionLimits.maximumRegexLiterals) regexes: combine them with `|`")
        }
        let regex: LinearRegex
        do {
            regex = try LinearRegex(pattern, caseInsensitive: caseInsensitive)
        } catch {
            let opener = error.opener.map { " at column \(source.column(patternOffset + $0))" } ?? ""
            throw self.error(at: patternOffset + error.offset, "invalid regex: \(error.message)\(opener)")
        }
        regexInstructions += regex.program.count
        guard regexInstructions <= ConditionLimits.maximumTotalRegexInstructions else {
            throw error(
                at: offset,
                "the condition's regexes compile to more than \(ConditionLimits.maximumTotalRegexInstructions) instructions "
                    + "in all (counted repeats are expanded): simplify them")
        }
        return regex
    }

    // MARK: - Types

    /// The operand as a condition: a string is true when non-empty; a regex is refused.
    private func condition(_ parsed: Parsed) throws(ConditionSyntaxError) -> ConditionNode {
        switch parsed.operand {
        case .condition(let node): return node
        case .value(let value): return .nonEmpty(value)
        case .regex:
            throw error(
                at: parsed.offset, "a regex alone is not a condition: match it against a variable, as in `message =~ /.../`")
        }
    }

    /// The operand as a string, for `operation`'s side.
    private func value(_ parsed: Parsed, of operation: ConditionToken) throws(ConditionSyntaxError) -> ConditionValue {
        switch parsed.operand {
        case .value(let value):
            return value
        case .regex:
            throw error(
                at: parsed.offset,
                "a regex can only be the right side of `=~` or `!~`; \(operation.shown) compares strings")
        case .condition:
            var message = "\(operation.shown) compares strings, but this side is a condition (true or false)"
            if let hint = parsed.hintAsString { message += ": \(hint)" }
            throw error(at: parsed.offset, message)
        }
    }

    // MARK: - Helpers

    /// The current token; the token list always ends with `.end`, which is never passed.
    private var current: ConditionToken {
        index < tokens.count ? tokens[index] : ConditionToken(kind: .end, offset: source.scalars.count)
    }

    private mutating func advance() {
        if index < tokens.count - 1 { index += 1 }
    }

    private mutating func enter(_ token: ConditionToken) throws(ConditionSyntaxError) {
        depth += 1
        guard depth <= ConditionLimits.maximumNestingDepth else {
            throw error(
                at: token.offset,
                "the condition is nested more than \(ConditionLimits.maximumNestingDepth) levels deep (parentheses and `!`)")
        }
    }

    private func error(at offset: Int, _ message: String) -> ConditionSyntaxError {
        ConditionSyntaxError(offset: source.characterOffset(offset), message: message)
    }
}
