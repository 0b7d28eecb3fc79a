/// A glob over relative paths: `artifacts: [dist/*.tar.gz, "build/**/*.xml"]` and the
/// `path:` of a `download:`.
///
/// `*` matches any run of characters within one segment, `?` one character, `[abc]`,
/// `[a-z]` and `[!a-z]` (or `[^a-z]`) one character of (or not of) a set, and `**` as a
/// whole segment any number of segments, none included. `/` is matched only by `/`.
/// Names that start with `.` are matched like any other (unlike a shell), so `dist/*`
/// uploads `dist/.hidden` too. There are no escapes: a file whose name holds `*`, `?` or
/// `[` is matched by `?` or a class.
///
/// Matching is a dynamic programme over segments and, within a segment, over characters,
/// so its cost is bounded by the product of the lengths whatever the pattern: a hostile
/// `*a*a*a*a*b` costs no more than `TransferLimits` allows.
public struct ArtifactGlob: Sendable, Hashable, CustomStringConvertible {
    enum Element: Sendable, Hashable {
        case literal(Unicode.Scalar)
        case any
        case star
        case set(ScalarSet)
    }

    struct ScalarSet: Sendable, Hashable {
        var ranges: [ClosedRange<UInt32>]
        var negated: Bool

        func contains(_ scalar: Unicode.Scalar) -> Bool {
            ranges.contains { $0.contains(scalar.value) } != negated
        }
    }

    enum Segment: Sendable, Hashable {
        case globstar
        case pattern([Element])

        var literal: String? {
            guard case .pattern(let elements) = self else { return nil }
            var text = String.UnicodeScalarView()
            for element in elements {
                guard case .literal(let scalar) = element else { return nil }
                text.append(scalar)
            }
            return String(text)
        }
    }

    public let text: String
    let segments: [Segment]

    public var description: String { text }

    /// The error says what is wrong in words a pipeline author can act on.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public init(_ text: String, what: String = "glob") throws(SyntaxError) {
        if let problem = TransferPath.problem(with: text, what: what) { throw SyntaxError(message: problem) }
        var segments: [Segment] = []
        for part in TransferPath.segments(of: text) {
            if part == "**" {
                // `**/**` is the same as `**`; keeping one keeps the matcher's work down.
                if segments.last != .globstar { segments.append(.globstar) }
                continue
            }
            segments.append(.pattern(try Self.elements(of: part, whole: text, what: what)))
        }
        self.text = text
        self.segments = segments
    }

    private static func elements(of part: Substring, whole: String, what: String) throws(SyntaxError) -> [Element] {
        var elements: [Element] = []
        let scalars = Array(part.unicodeScalars)
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            switch scalar {
            case "*":
                if index + 1 < scalars.count, scalars[index + 1] == "*" {
                    throw SyntaxError(
                        message: "\(what) `\(whole)` has `**` inside a segment: `**` must be a whole segment (`a/**/b`)")
                }
                elements.append(.star)
            case "?": elements.append(.any)
            case "[":
                let (set, next) = try parseSet(scalars, from: index + 1, whole: whole, what: what)
                elements.append(.set(set))
                index = next
                continue
            case "]": throw SyntaxError(message: "\(what) `\(whole)` has a `]` without its `[`")
            default: elements.append(.literal(scalar))
            }
            index += 1
        }
        return elements
    }

    /// A class after its `[`; returns the set and the index after its `]`.
    private static func parseSet(
        _ scalars: [Unicode.Scalar], from start: Int, whole: String, what: String
    ) throws(SyntaxError) -> (ScalarSet, Int) {
        var index = start
        var negated = false
        if index < scalars.count, scalars[index] == "!" || scalars[index] == "^" {
            negated = true
            index += 1
        }
        var ranges: [ClosedRange<UInt32>] = []
        var first = true
        while index < scalars.count {
            let scalar = scalars[index]
            // A `]` first in the class is a member, as in every shell.
            if scalar == "]" && !first { return (ScalarSet(ranges: ranges, negated: negated), index + 1) }
            first = false
            if index + 2 < scalars.count, scalars[index + 1] == "-", scalars[index + 2] != "]" {
                let (low, high) = (scalar.value, scalars[index + 2].value)
                guard low <= high else {
                    throw SyntaxError(
                        message: "\(what) `\(whole)` has the range `\(scalar)-\(scalars[index + 2])`, which is backwards")
                }
                ranges.append(low...high)
                index += 3
            } else {
                ranges.append(scalar.value...scalar.value)
                index += 1
            }
        }
        throw SyntaxError(message: "\(what) `\(whole)` has a `[` without its `]`")
    }

    /// The leading segments without wildcards (`dist` of `dist/*.tar.gz`): the directory
    /// to walk, so expanding a glob does not scan the whole work dir.
    public var literalPrefix: [String] {
        var prefix: [String] = []
        for segment in segments.dropLast() {
            guard let literal = segment.literal else { break }
            prefix.append(literal)
        }
        return prefix
    }

    /// Whether the whole glob is a literal path (no wildcard anywhere).
    public var isLiteral: Bool { segments.allSatisfy { $0.literal != nil } }

    /// Whether `path` (a relative path with `/` separators) matches.
    public func matches(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        return Self.matches(segments, parts)
    }

    /// Segment-level DP: `reach[j]` is true when the glob's segments so far can consume
    /// exactly the first `j` path segments.
    static func matches(_ segments: [Segment], _ parts: [[Unicode.Scalar]]) -> Bool {
        var reach = [Bool](repeating: false, count: parts.count + 1)
        reach[0] = true
        for segment in segments {
            var next = [Bool](repeating: false, count: parts.count + 1)
            switch segment {
            case .globstar:
                var any = false
                for j in 0...parts.count {
                    any = any || reach[j]
                    next[j] = any
                }
            case .pattern(let elements):
                for j in 0..<parts.count where reach[j] {
                    next[j + 1] = matches(elements, parts[j])
                }
            }
            reach = next
            if !reach.contains(true) { return false }
        }
        return reach[parts.count]
    }

    /// Character-level DP within one segment.
    static func matches(_ elements: [Element], _ name: [Unicode.Scalar]) -> Bool {
        var reach = [Bool](repeating: false, count: name.count + 1)
        reach[0] = true
        for element in elements {
            var next = [Bool](repeating: false, count: name.count + 1)
            switch element {
            case .star:
                var any = false
                for j in 0...name.count {
                    any = any || reach[j]
                    next[j] = any
                }
            case .any:
                for j in 0..<name.count where reach[j] { next[j + 1] = true }
            case .literal(let scalar):
                for j in 0..<name.count where reach[j] && name[j] == scalar { next[j + 1] = true }
            case .set(let set):
                for j in 0..<name.count where reach[j] && set.contains(name[j]) { next[j + 1] = true }
            }
            reach = next
        }
        return reach[name.count]
    }
}
