/// Splits an `if:` expression into `ConditionToken`s.
///
/// It walks Unicode scalars rather than Characters so that a quote or slash followed by a
/// combining mark still delimits (a grapheme cluster would swallow it), and reports
/// problems with scalar offsets that the parser converts. `/` always starts a regex
/// literal: the language has no division, so there is no ambiguity to resolve.
struct ConditionLexer {
    /// Problems are reported as (scalar offset, message); the parser converts the offset.
    struct Failure: Error {
        var offset: Int
        var message: String
    }

    private let source: ConditionSource
    private var position = 0
    private var scalars: [Unicode.Scalar] { source.scalars }

    init(_ source: ConditionSource) {
        self.source = source
    }

    static func isIdentifierScalar(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_"
    }

    mutating func tokens() throws(Failure) -> [ConditionToken] {
        var tokens: [ConditionToken] = []
        while true {
            let token = try next()
            tokens.append(token)
            if token.kind == .end { return tokens }
        }
    }

    private mutating func next() throws(Failure) -> ConditionToken {
        while let scalar = peek, scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" {
            position += 1
        }
        let start = position
        guard let scalar = peek else { return ConditionToken(kind: .end, offset: start) }
        position += 1
        func token(_ kind: ConditionToken.Kind, length: Int = 1) -> ConditionToken {
            position = start + length
            return ConditionToken(kind: kind, offset: start)
        }
        switch scalar {
        case "(": return token(.leftParenthesis)
        case ")": return token(.rightParenthesis)
        case "&":
            guard peek == "&" else { throw Failure(offset: start, message: "expected `&&`: a single `&` is not an operator") }
            return token(.and, length: 2)
        case "|":
            guard peek == "|" else { throw Failure(offset: start, message: "expected `||`: a single `|` is not an operator") }
            return token(.or, length: 2)
        case "=":
            switch peek {
            case "=": return token(.equal, length: 2)
            case "~": return token(.matches, length: 2)
            default: throw Failure(offset: start, message: "expected `==` or `=~`: a single `=` is not an operator")
            }
        case "!":
            switch peek {
            case "=": return token(.notEqual, length: 2)
            case "~": return token(.notMatches, length: 2)
            default: return token(.not)
            }
        case "\"", "'":
            return ConditionToken(kind: .string(try string(quote: scalar, openedAt: start)), offset: start)
        case "/":
            return try regex(openedAt: start)
        default:
            guard Self.isIdentifierScalar(scalar), !("0"..."9").contains(scalar) else {
                throw Failure(
                    offset: start,
                    message: "unexpected `\(Self.shown(scalar))`: expected a variable, a string in quotes, "
                        + "a regex in slashes, `true`, `false`, an operator or a parenthesis")
            }
            // `env.NAME` is one identifier; the parser checks what follows `env.`.
            while let next = peek, Self.isIdentifierScalar(next) || next == "." { position += 1 }
            return ConditionToken(kind: .identifier(String(String.UnicodeScalarView(scalars[start..<position]))), offset: start)
        }
    }

    /// After the opening quote: the string's value with `\"` `\'` `\\` `\n` `\t` resolved.
    private mutating func string(quote: Unicode.Scalar, openedAt start: Int) throws(Failure) -> String {
        var value = String.UnicodeScalarView()
        while let scalar = peek {
            position += 1
            if scalar == quote { return String(value) }
            guard scalar == "\\" else {
                value.append(scalar)
                continue
            }
            switch peek {
            case "\"": value.append("\"")
            case "'": value.append("'")
            case "\\": value.append("\\")
            case "n": value.append("\n")
            case "t": value.append("\t")
            case let other?:
                throw Failure(
                    offset: position - 1,
                    message: "unknown escape `\\\(Self.shown(other))` in a string: "
                        + "only `\\\"`, `\\'`, `\\\\`, `\\n` and `\\t` are escapes; write `\\\\` for a backslash")
            case nil:
                break
            }
            if peek != nil { position += 1 }
        }
        throw Failure(
            offset: scalars.count,
            message: "expected `\(quote)` to close the string that starts at column \(source.column(start))")
    }

    /// After the opening `/`: the raw pattern up to the next unescaped `/`, then flags.
    private mutating func regex(openedAt start: Int) throws(Failure) -> ConditionToken {
        let patternStart = position
        while let scalar = peek, scalar != "/" {
            position += 1
            // `\/` (and every other escape) is passed on whole, so an escaped slash does not end the literal.
            if scalar == "\\", peek != nil { position += 1 }
        }
        guard peek == "/" else {
            throw Failure(
                offset: scalars.count,
                message: "expected `/` to close the regex that starts at column \(source.column(start)) (write `\\/` for a slash inside it)")
        }
        let pattern = String(String.UnicodeScalarView(scalars[patternStart..<position]))
        position += 1
        var caseInsensitive = false
        while let flag = peek, Self.isIdentifierScalar(flag) {
            guard flag == "i", !caseInsensitive else {
                throw Failure(
                    offset: position,
                    message: flag == "i"
                        ? "the flag `i` is given twice"
                        : "unknown regex flag `\(flag)`: only `i` (ignore case) is supported; `^` and `$` always match "
                            + "at the start and end of the whole text")
            }
            caseInsensitive = true
            position += 1
        }
        return ConditionToken(kind: .regex(pattern: pattern, patternOffset: patternStart, caseInsensitive: caseInsensitive), offset: start)
    }

    /// A scalar for a message: letters as they are, anything else that is not printable
    /// ASCII (combining marks, controls, invisible spaces) as `\u{...}`, so it is visible.
    static func shown(_ scalar: Unicode.Scalar) -> String {
        scalar.escaped(asASCII: !scalar.properties.isAlphabetic)
    }

    private var peek: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }
}
