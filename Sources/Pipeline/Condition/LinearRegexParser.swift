/// Reads a pattern's text into a `LinearRegexNode`, refusing whatever the engine does not
/// support with the scalar offset and what to write instead.
///
/// Every construct that other engines give a meaning this one lacks is an error rather
/// than a literal: `\1`, `(?=`, `a*+`, `[[:alpha:]]`, a stray `{`. A pattern that is
/// silently read differently from what its author meant is worse than a refused one,
/// because a condition that quietly never matches skips a deploy nobody notices.
///
/// The parser also computes how many instructions the compiled program will have, as it
/// goes, with the same formulas the compiler uses, and refuses a pattern over
/// `LinearRegex.maximumInstructions` at the quantifier or part that crosses it: counted
/// repeats multiply (`(?:a{100}){100}` is 10,000 copies), so the budget is checked before
/// anything is expanded.
struct LinearRegexParser {
    private let scalars: [Unicode.Scalar]
    private var position = 0
    private var depth = 0

    /// A parsed piece and the number of instructions it compiles to (without `.match`).
    private struct Piece {
        var node: LinearRegexNode
        var cost: Int
    }

    /// Instructions a pattern may use before the final `match`.
    private static let budget = LinearRegex.maximumInstructions - 1

    init(_ pattern: String) {
        self.scalars = Array(pattern.unicodeScalars)
    }

    mutating func parse() throws(LinearRegexError) -> LinearRegexNode {
        let piece = try alternation()
        if position < scalars.count {
            // `alternation` stops only at the end or at a `)`; here no group is open.
            throw error("unmatched `)`: there is no `(` before it; write `\\)` for a literal parenthesis")
        }
        return piece.node
    }

    // MARK: - Structure

    private mutating func alternation() throws(LinearRegexError) -> Piece {
        let start = position
        var alternatives = [try concatenation()]
        while peek == "|" {
            position += 1
            alternatives.append(try concatenation())
        }
        guard alternatives.count > 1 else { return alternatives[0] }
        // Each alternative but the last adds a `split` and a `jump`.
        var cost = 2 * (alternatives.count - 1)
        for alternative in alternatives { cost += alternative.cost }
        try checkBudget(cost, at: start)
        return Piece(node: .alternation(alternatives.map(\.node)), cost: cost)
    }

    private mutating func concatenation() throws(LinearRegexError) -> Piece {
        var parts: [LinearRegexNode] = []
        var cost = 0
        while let scalar = peek, scalar != "|", scalar != ")" {
            let start = position
            let piece = try repetition()
            cost += piece.cost
            try checkBudget(cost, at: start)
            parts.append(piece.node)
        }
        switch parts.count {
        case 0: return Piece(node: .empty, cost: 0)
        case 1: return Piece(node: parts[0], cost: cost)
        default: return Piece(node: .concatenation(parts), cost: cost)
        }
    }

    private mutating func repetition() throws(LinearRegexError) -> Piece {
        let piece = try atom()
        let quantifierStart = position
        guard let bounds = try quantifier() else { return piece }
        let (minimum, maximum) = bounds
        // A lazy `?` changes which match is found, not whether one is: accepted, same meaning.
        if peek == "?" { position += 1 }
        if peek == "+" {
            throw error("possessive quantifiers (`*+`, `++`, `?+`, `{m,n}+`) are not supported")
        }
        if let next = peek, next == "*" || next == "+" || next == "?" || next == "{" {
            throw error(
                "`\(next)` cannot follow another quantifier: to repeat a repeated part, group it, as in `(?:a{2}){3}`")
        }
        let cost = Self.cost(repeating: piece.cost, minimum: minimum, maximum: maximum)
        try checkBudget(cost, at: quantifierStart)
        return Piece(node: .repeating(piece.node, minimum: minimum, maximum: maximum), cost: cost)
    }

    /// Instructions for `inner` repeated: `minimum` copies, then either a loop (unbounded)
    /// or `maximum - minimum` optional copies, each behind a `split`. Operands are at most
    /// `budget + 1` and 100, so nothing overflows.
    static func cost(repeating inner: Int, minimum: Int, maximum: Int?) -> Int {
        guard let maximum else {
            // `x*` is split, x, jump; `x{m,}` is m copies, the last followed by a split back.
            return minimum == 0 ? inner + 2 : minimum * inner + 1
        }
        return minimum * inner + (maximum - minimum) * (inner + 1)
    }

    /// `*`, `+`, `?` or a counted repeat at the current position, consumed; nil if there
    /// is none.
    private mutating func quantifier() throws(LinearRegexError) -> (Int, Int?)? {
        switch peek {
        case "*":
            position += 1
            return (0, nil)
        case "+":
            position += 1
            return (1, nil)
        case "?":
            position += 1
            return (0, 1)
        case "{":
            return try countedRepeat()
        default:
            return nil
        }
    }

    /// `{m}`, `{m,}` or `{m,n}`, with m ≤ n ≤ `LinearRegex.maximumRepeatCount`.
    private mutating func countedRepeat() throws(LinearRegexError) -> (Int, Int?) {
        let start = position
        let malformed = "expected a repeat count such as `{2}`, `{2,}` or `{2,5}` after `{`; write `\\{` for a literal brace"
        position += 1
        guard let minimum = number() else { throw error(malformed, at: start) }
        var maximum: Int? = minimum
        if peek == "," {
            position += 1
            maximum = peek == "}" ? nil : number()
            if maximum == nil, peek != "}" { throw error(malformed, at: start) }
        }
        guard peek == "}" else { throw error(malformed, at: start) }
        position += 1
        let largest = LinearRegex.maximumRepeatCount
        guard minimum <= largest, (maximum ?? 0) <= largest else {
            throw error("repeat counts are limited to \(largest); use `+` or `*` for an unbounded repeat", at: start)
        }
        if let maximum, maximum < minimum {
            throw error("the repeat `{\(minimum),\(maximum)}` has its maximum below its minimum", at: start)
        }
        return (minimum, maximum)
    }

    /// Up to 4 ASCII digits (more is over the limit anyway, and cannot overflow).
    private mutating func number() -> Int? {
        var value = 0
        var digits = 0
        while let scalar = peek, ("0"..."9").contains(scalar) {
            position += 1
            digits += 1
            if digits <= 4 { value = value * 10 + Int(scalar.value - 0x30) }
        }
        guard digits > 0 else { return nil }
        return digits <= 4 ? value : Int.max
    }

    private mutating func atom() throws(LinearRegexError) -> Piece {
        let start = position
        guard let scalar = peek else { throw error("expected more pattern") }
        position += 1
        switch scalar {
        case "(":
            return try group(openedAt: start)
        case "[":
            return Piece(node: .set(try characterClass(openedAt: start)), cost: 1)
        case ".":
            return Piece(node: .set(LinearRegexScalarSet([0x0A...0x0A], negated: true)), cost: 1)
        case "^":
            return Piece(node: .textStart, cost: 1)
        case "$":
            return Piece(node: .textEnd, cost: 1)
        case "\\":
            switch try escape(startingAt: start, inClass: false) {
            case .scalar(let literal): return Piece(node: .scalar(literal), cost: 1)
            case .ranges(let ranges, let negated): return Piece(node: .set(LinearRegexScalarSet(ranges, negated: negated)), cost: 1)
            }
        case "*", "+", "?":
            throw error("`\(scalar)` has nothing before it to repeat; write `\\\(scalar)` for a literal `\(scalar)`", at: start)
        case "{":
            position = start
            _ = try countedRepeat()
            throw error("a repeat count has nothing before it to repeat; write `\\{` for a literal brace", at: start)
        default:
            return Piece(node: .scalar(scalar), cost: 1)
        }
    }

    /// After `(`: `(...)` or `(?:...)`; every other `(?` form is refused by name.
    private mutating func group(openedAt start: Int) throws(LinearRegexError) -> Piece {
        if peek == "?" {
            let next = lookahead(position + 1)
            let following = lookahead(position + 2)
            switch next {
            case ":":
                position += 2
            case "=", "!":
                throw error("lookahead `(?\(next.map(String.init) ?? "")` is not supported (it cannot be matched in linear time)", at: start)
            case "<" where following == "=" || following == "!":
                throw error("lookbehind `(?<\(following.map(String.init) ?? "")` is not supported (it cannot be matched in linear time)", at: start)
            case "<", "P":
                throw error("named groups are not supported: use `(...)`, nothing is captured anyway", at: start)
            case ">":
                throw error("atomic groups `(?>` are not supported", at: start)
            default:
                throw error("inline flags and other `(?` groups are not supported: use `(?:...)` to group and `/.../i` to ignore case", at: start)
            }
        }
        depth += 1
        guard depth <= LinearRegex.maximumNestingDepth else {
            throw error("groups are nested more than \(LinearRegex.maximumNestingDepth) deep", at: start)
        }
        let inner = try alternation()
        depth -= 1
        guard peek == ")" else {
            throw LinearRegexError(offset: position, message: "expected `)` to close the `(`", opener: start)
        }
        position += 1
        return inner
    }

    // MARK: - Classes and escapes

    /// After `[`: `[abc]`, `[a-z]`, `[^...]`, with escapes and `\d`-style shorthands.
    private mutating func characterClass(openedAt start: Int) throws(LinearRegexError) -> LinearRegexScalarSet {
        var negated = false
        if peek == "^" {
            negated = true
            position += 1
        }
        var ranges: [ClosedRange<UInt32>] = []
        var isFirst = true
        while true {
            let itemStart = position
            guard let scalar = peek else {
                throw LinearRegexError(offset: scalars.count, message: "expected `]` to close the class `[`", opener: start)
            }
            if scalar == "]" {
                guard !isFirst else {
                    throw error("empty class `[]`: write `\\]` for a literal `]`", at: start)
                }
                position += 1
                return LinearRegexScalarSet(ranges, negated: negated)
            }
            isFirst = false
            switch try classMember() {
            case .ranges(let members, let negatedShorthand):
                ranges += negatedShorthand ? LinearRegexScalarSet.complement(of: members) : members
                if peek == "-", lookahead(position + 1) != "]" {
                    throw error("a range cannot start or end with a class shorthand such as `\\d`; write `\\-` for a literal `-`", at: position)
                }
            case .scalar(let lowScalar):
                // `-` makes a range unless it is last (`[a-]`), where it is a literal.
                guard peek == "-", let afterDash = lookahead(position + 1), afterDash != "]" else {
                    ranges.append(lowScalar.value...lowScalar.value)
                    continue
                }
                position += 1
                guard case .scalar(let highScalar) = try classMember() else {
                    throw error("a range cannot start or end with a class shorthand such as `\\d`; write `\\-` for a literal `-`", at: itemStart)
                }
                guard lowScalar.value <= highScalar.value else {
                    throw error("the range `\(lowScalar)-\(highScalar)` is reversed: write the lower end first", at: itemStart)
                }
                ranges.append(lowScalar.value...highScalar.value)
            }
        }
    }

    /// One member of a class: a scalar or a shorthand.
    private mutating func classMember() throws(LinearRegexError) -> Escape {
        let start = position
        guard let scalar = peek else {
            throw error("expected `]` to close the class", at: scalars.count)
        }
        position += 1
        switch scalar {
        case "\\":
            return try escape(startingAt: start, inClass: true)
        case "[":
            throw error(
                "write `\\[` for a literal `[` inside a class (POSIX classes such as `[:alpha:]` and nested classes are not supported)",
                at: start)
        default:
            return .scalar(scalar)
        }
    }

    private enum Escape {
        case scalar(Unicode.Scalar)
        case ranges([ClosedRange<UInt32>], negated: Bool)
    }

    /// After `\`: a control escape, a shorthand, or escaped ASCII punctuation (a literal).
    private mutating func escape(startingAt start: Int, inClass: Bool) throws(LinearRegexError) -> Escape {
        guard let scalar = peek else {
            throw error("the pattern ends with a lone `\\`; write `\\\\` for a literal backslash", at: start)
        }
        position += 1
        switch scalar {
        case "n": return .scalar("\n")
        case "t": return .scalar("\t")
        case "r": return .scalar("\r")
        case "d": return .ranges(LinearRegexScalarSet.digits, negated: false)
        case "D": return .ranges(LinearRegexScalarSet.digits, negated: true)
        case "w": return .ranges(LinearRegexScalarSet.wordCharacters, negated: false)
        case "W": return .ranges(LinearRegexScalarSet.wordCharacters, negated: true)
        case "s": return .ranges(LinearRegexScalarSet.whitespace, negated: false)
        case "S": return .ranges(LinearRegexScalarSet.whitespace, negated: true)
        case "0"..."9":
            throw error("backreferences and octal escapes such as `\\\(scalar)` are not supported", at: start)
        case "b", "B", "A", "z", "Z", "G":
            throw error("the anchor `\\\(scalar)` is not supported: `^` and `$` match at the start and end of the whole text", at: start)
        case "p", "P":
            throw error("Unicode property classes such as `\\p{L}` are not supported", at: start)
        default:
            guard scalar.isASCII, !Self.isASCIILetterOrDigit(scalar), scalar.value >= 0x21, scalar.value < 0x7F else {
                throw error("unknown escape `\\\(scalar)`: only `\\n`, `\\t`, `\\r`, `\\d`, `\\w`, `\\s`, `\\D`, `\\W`, `\\S` and escaped punctuation such as `\\.` are supported", at: start)
            }
            return .scalar(scalar)
        }
    }

    private static func isASCIILetterOrDigit(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }

    // MARK: - Helpers

    private var peek: Unicode.Scalar? { lookahead(position) }

    private func lookahead(_ index: Int) -> Unicode.Scalar? {
        index >= 0 && index < scalars.count ? scalars[index] : nil
    }

    private func checkBudget(_ cost: Int, at offset: Int) throws(LinearRegexError) {
        guard cost <= Self.budget else {
            throw error(
                "the regex compiles to more than \(LinearRegex.maximumInstructions) instructions (counted repeats are "
                    + "expanded: `x{100}` is 100 copies of x); use `+` or `*`, or smaller counts",
                at: offset)
        }
    }

    private func error(_ message: String, at offset: Int? = nil) -> LinearRegexError {
        LinearRegexError(offset: offset ?? position, message: message)
    }
}
