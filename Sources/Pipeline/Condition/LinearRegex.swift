/// A regular expression matched in time linear in the text: a Thompson NFA run as a Pike
/// VM, with RE2's syntax subset (see docs/pipeline.md, "The expression language").
///
/// Why not Swift's `Regex`: it backtracks and has no timeout, so `(a+)+$` against a long
/// run of `a`s takes exponential time, and conditions are written by anyone with an API
/// token and matched against commit messages written by anyone who can push. This engine
/// keeps every NFA state that is alive at a position in one set and advances them all
/// together, so each scalar of the text costs at most one step per instruction:
/// O(`program.count` × text length) time and O(`program.count`) memory, whatever the
/// pattern. The price is the features a backtracker has and an automaton cannot:
/// backreferences and lookaround are refused, as in RE2.
///
/// The engine only answers "does it match anywhere?", which is all a condition needs, so
/// there are no captures and greedy and lazy quantifiers behave the same.
///
/// It works on Unicode scalars, not Characters: scalars are what RE2 and git see, `.`
/// consumes exactly one of them, and nothing depends on grapheme breaking rules that
/// change between Unicode versions. `e\u{301}` is two scalars, so `^.$` does not match it.
struct LinearRegex: Sendable {
    // MARK: - Limits (documented in `ConditionLimits`)

    /// Longest pattern, in UTF-8 bytes of its source text (between the slashes).
    static let maximumPatternBytes = ConditionLimits.maximumRegexBytes
    /// Most instructions in a compiled pattern, counting every copy a counted repeat makes:
    /// the constant in the O(instructions × text) bound.
    static let maximumInstructions = ConditionLimits.maximumRegexInstructions
    /// Largest number in `{m}`, `{m,}` and `{m,n}`. Nested repeats multiply
    /// (`(?:a{100}){100}`); the instruction limit refuses those before they are expanded.
    static let maximumRepeatCount = ConditionLimits.maximumRegexRepeatCount
    /// Deepest nesting of groups; the parser and compiler recurse once per level.
    static let maximumNestingDepth = ConditionLimits.maximumRegexNestingDepth

    // MARK: - The compiled pattern

    let program: [LinearRegexInstruction]
    let sets: [LinearRegexScalarSet]
    let caseInsensitive: Bool
    /// The pattern can only match at the start of the text (it begins with `^` in every
    /// alternative), so the matcher may stop as soon as no state is alive.
    let anchoredAtStart: Bool

    /// Parses and compiles `pattern`, the text between the slashes of a regex literal.
    init(_ pattern: String, caseInsensitive: Bool = false) throws(LinearRegexError) {
        guard pattern.utf8.count <= Self.maximumPatternBytes else {
            throw LinearRegexError(
                offset: 0,
                message: "the regex is \(pattern.utf8.count) bytes long; the limit is \(Self.maximumPatternBytes)")
        }
        var parser = LinearRegexParser(pattern)
        let node = try parser.parse()
        var compiler = Compiler(caseInsensitive: caseInsensitive)
        compiler.compile(node)
        compiler.emit(.match)
        self.program = compiler.program
        self.sets = compiler.sets
        self.caseInsensitive = caseInsensitive
        self.anchoredAtStart = Self.isAnchoredAtStart(node)
    }

    private static func isAnchoredAtStart(_ node: LinearRegexNode) -> Bool {
        switch node {
        case .textStart: return true
        case .concatenation(let parts): return parts.first.map(isAnchoredAtStart) ?? false
        case .alternation(let alternatives): return !alternatives.isEmpty && alternatives.allSatisfy(isAnchoredAtStart)
        case .repeating(let inner, let minimum, _): return minimum > 0 && isAnchoredAtStart(inner)
        case .empty, .scalar, .set, .textEnd: return false
        }
    }
}
