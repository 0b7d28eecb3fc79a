@testable import GantryPipeline
import Testing

@Suite("Linear regex", .timeLimit(.minutes(1)))
struct LinearRegexTests {
    /// Whether `pattern` matches `text`; records an issue (and answers nil) if the pattern
    /// is refused.
    private func matches(
        _ pattern: String, _ text: String, ignoringCase: Bool = false, sourceLocation: SourceLocation = #_sourceLocation
    ) -> Bool? {
        do {
            return try LinearRegex(pattern, caseInsensitive: ignoringCase).matches(text)
        } catch {
            Issue.record("/\(pattern)/ was refused: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// Checks that `pattern` is refused at scalar `offset` with a message containing `text`.
    private func expectRefused(
        _ pattern: String, at offset: Int, containing text: String, openedAt opener: Int? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            let regex = try LinearRegex(pattern)
            Issue.record("/\(pattern)/ compiled to \(regex.program.count) instructions; expected an error", sourceLocation: sourceLocation)
        } catch {
            #expect(error.offset == offset, "/\(pattern)/: \(error)", sourceLocation: sourceLocation)
            #expect(error.opener == opener, "/\(pattern)/: \(error)", sourceLocation: sourceLocation)
            #expect(error.message.contains(text), "/\(pattern)/: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func tableOfPatterns() {
        let table: [(pattern: String, text: String, expected: Bool)] = [
            // Literals and search anywhere.
            ("abc", "xxabcxx", true), ("abc", "ab", false), ("", "", true), ("", "anything", true),
            ("skip deploy", "please skip deploy now", true), ("skip deploy", "skip  deploy", false),
            // `.` is any scalar but a newline.
            ("a.c", "abc", true), ("a.c", "a\nc", false), ("a.c", "a.c", true), ("^.$", "\n", false),
            // Escapes.
            ("a\\.c", "abc", false), ("a\\.c", "a.c", true), ("\\\\", "back\\slash", true), ("a\\/b", "a/b", true),
            ("\\n", "two\nlines", true), ("\\t", "tab\there", true), ("\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$", "*+?()[]{}|^$", true),
            ("\\d+", "v12", true), ("\\d", "vx", false), ("\\D", "123", false), ("\\D", "12a", true),
            ("\\w+", "__", true), ("\\W", "abc_123", false), ("\\W", "a-b", true),
            ("\\s", "a b", true), ("\\s", "ab", false), ("\\S", "   ", false), ("\\S", " x ", true),
            // Classes, ranges, negation.
            ("[abc]", "xbx", true), ("[abc]", "xyz", false), ("[a-z]+", "ABC", false), ("[a-z]+", "ABc", true),
            ("^[a-fA-F0-9]+$", "c0ffee", true), ("^[a-fA-F0-9]+$", "coffee", false),
            ("[^abc]", "abc", false), ("[^abc]", "abcd", true), ("[^a]", "\n", true),
            ("[a-]", "-", true), ("[-a]", "-", true), ("[\\]]", "]", true), ("[\\^]", "^", true), ("[a^]", "^", true),
            ("[\\d.]+", "1.2.3", true), ("^[\\w-]+$", "feature-x_1", true), ("^[\\w-]+$", "feature/x", false),
            ("[^\\d]", "123", false), ("[^\\D]", "abc", false), ("[^\\D]", "ab1", true), ("[\\s\\S]", "\n", true),
            ("[.]", "a", false), ("[.]", ".", true), ("[*+?]", "+", true),
            // Anchors: the whole text, also in multi-line text.
            ("^main$", "main", true), ("^main$", "main\n", false), ("^main$", "xmain", false), ("^b", "a\nb", false),
            ("a$", "a\nb", false), ("b$", "a\nb", true), ("^", "", true), ("$", "", true), ("^$", "", true), ("^$", "x", false),
            ("^(a|b)", "ba", true), ("x^", "x", false), ("$x", "x", false),
            // Alternation and groups.
            ("cat|dog", "hotdog", true), ("cat|dog", "cow", false), ("^(cat|dog)$", "dog", true), ("^(cat|dog)$", "dogs", false),
            ("^(?:release|hotfix)/", "hotfix/1.2", true), ("a|", "zzz", true), ("|a", "zzz", true), ("()", "", true),
            ("^(a|b|c|d)+$", "abcdcba", true), ("^(a|b|c|d)+$", "abcdx", false),
            // Quantifiers.
            ("^ab*c$", "ac", true), ("^ab*c$", "abbbc", true), ("^ab+c$", "ac", false), ("^ab+c$", "abc", true),
            ("^ab?c$", "abc", true), ("^ab?c$", "abbc", false), ("^a*?$", "aaa", true), ("^a+?b$", "aab", true),
            ("^a??$", "", true),
            // Counted repeats.
            ("^a{3}$", "aaa", true), ("^a{3}$", "aa", false), ("^a{3}$", "aaaa", false),
            ("^a{2,}$", "a", false), ("^a{2,}$", "aaaaaa", true), ("^a{2,4}$", "aaaa", true), ("^a{2,4}$", "aaaaa", false),
            ("^a{0}$", "", true), ("^a{0}b$", "b", true), ("^a{0,0}$", "a", false), ("^(ab){2}$", "abab", true),
            ("^(ab){2}$", "aba", false), ("^a{0,2}$", "", true), ("^a{1,1}$", "a", true), ("^(?:a{2}){3}$", "aaaaaa", true),
            ("^(?:a{2}){3}$", "aaaaa", false), ("^v[0-9]{1,3}\\.[0-9]{1,3}$", "v1.22", true), ("^\\d{4}-\\d{2}$", "2024-1", false),
            ("x{2}}", "xx}", true), ("a]", "a]", true),
            // Realistic conditions.
            ("^v[0-9]+\\.", "v1.2.3", true), ("^v[0-9]+\\.", "version", false),
            ("\\[(ci|deploy) skip\\]", "fix: x [ci skip]", true), ("\\[(ci|deploy) skip\\]", "fix: x [ci  skip]", false),
            ("^(main|release/.+)$", "release/2024.1", true), ("^(main|release/.+)$", "release/", false),
            // Empty loops cannot spin.
            ("^(a*)*$", "aaa", true), ("^(a*)*$", "aab", false), ("(a*)+b", "aaab", true), ("^(a?)*$", "aa", true),
            ("^(|a)+$", "aa", true), ("(^)*x", "x", true), ("($)*x", "x", true),
        ]
        for row in table {
            #expect(matches(row.pattern, row.text) == row.expected, "/\(row.pattern)/ against \(row.text.debugDescription)")
        }
    }

    @Test func ignoringCase() {
        #expect(matches("skip deploy", "SKIP Deploy", ignoringCase: true) == true)
        #expect(matches("skip deploy", "SKIP Deploy") == false)
        #expect(matches("SKIP", "skip", ignoringCase: true) == true)
        #expect(matches("^[a-z]+$", "MiXeD", ignoringCase: true) == true)
        #expect(matches("^[A-Z]+$", "lower", ignoringCase: true) == true)
        #expect(matches("[^a]", "A", ignoringCase: true) == false)
        #expect(matches("[^a]", "B", ignoringCase: true) == true)
        #expect(matches("\\W", "K", ignoringCase: true) == false)
        // Non-ASCII letters with one-scalar case mappings fold too.
        #expect(matches("^é$", "É", ignoringCase: true) == true)
        #expect(matches("^σ$", "Σ", ignoringCase: true) == true)
        #expect(matches("^ä+$", "ÄäÄ", ignoringCase: true) == true)
        #expect(matches("^[à-ü]$", "Ö", ignoringCase: true) == true)
        #expect(matches("^[à-ü]$", "Ö") == false)
        // Digits and punctuation are unchanged.
        #expect(matches("^1\\.2$", "1.2", ignoringCase: true) == true)
        #expect(matches("^1\\.2$", "1x2", ignoringCase: true) == false)
    }

    /// Matching is on Unicode scalars: `.` consumes one scalar, so a letter with a
    /// combining accent is two, and a flag emoji is two regional indicators.
    @Test func unicodeInput() {
        #expect(matches("^.$", "é") == true)
        #expect(matches("^.$", "e\u{301}") == false)
        #expect(matches("^..$", "e\u{301}") == true)
        #expect(matches("^caf.$", "café") == true)
        #expect(matches("^..$", "🇫🇷") == true)
        #expect(matches("^.$", "👍") == true)
        #expect(matches("👍", "ship it 👍 now") == true)
        #expect(matches("^[α-ω]+$", "λόγος") == false)
        #expect(matches("^[α-ωά-ώ]+$", "λόγος") == true)
        #expect(matches("^\\w+$", "naïve") == false)
        #expect(matches("^\\d$", "٣") == false)
        #expect(matches("[^a]", "日") == true)
        #expect(matches("^日本+$", "日本本本") == true)
        #expect(matches("^\\S+$", "\u{00A0}") == true)
    }

    /// Patterns that take exponential time in a backtracking engine, against 50,000
    /// scalars. There is no time assertion: the engine is linear, so these finish at once;
    /// a regression would show up as the suite's time limit.
    @Test func pathologicalPatternsFinish() {
        let count = 50_000
        let as_ = String(repeating: "a", count: count)
        #expect(matches("(a+)+$", as_) == true)
        #expect(matches("^(a+)+$", as_ + "b") == false)
        #expect(matches("(a|aa)*b", as_) == false)
        #expect(matches("(a|aa)*b", as_ + "b") == true)
        #expect(matches("(.*)*x", as_) == false)
        #expect(matches("(.*)*x", as_ + "x") == true)
        #expect(matches("^(a|a?)+$", as_ + "!") == false)
        #expect(matches("(x+x+)+y", String(repeating: "x", count: count)) == false)
        #expect(matches("^(\\w+\\s?)*$", String(repeating: "word ", count: count / 5) + "!") == false)
        #expect(matches("(a*)*(b*)*(c*)*d", as_) == false)
        #expect(matches("a{100}b", as_) == false)
        #expect(matches("(?:a{10}){10}b", as_) == false)
        #expect(matches("[^\\n]*\\n", String(repeating: "x", count: count)) == false)
        #expect(matches("skip deploy", String(repeating: "skip deplo", count: count / 10) + "skip deploy") == true)
    }

    @Test func refusesUnsupportedSyntaxWithAnOffset() {
        expectRefused("a)", at: 1, containing: "unmatched `)`")
        expectRefused("(a", at: 2, containing: "expected `)` to close the `(`", openedAt: 0)
        expectRefused("x(a|(b)", at: 7, containing: "expected `)` to close the `(`", openedAt: 1)
        expectRefused("[a", at: 2, containing: "expected `]`", openedAt: 0)
        expectRefused("a[^b-", at: 5, containing: "expected `]`", openedAt: 1)
        expectRefused("[]", at: 0, containing: "empty class")
        expectRefused("[z-a]", at: 1, containing: "reversed")
        expectRefused("[\\d-z]", at: 3, containing: "class shorthand")
        expectRefused("[a-\\d]", at: 1, containing: "class shorthand")
        expectRefused("[[:alpha:]]", at: 1, containing: "POSIX")
        expectRefused("*a", at: 0, containing: "nothing before it")
        expectRefused("a|+", at: 2, containing: "nothing before it")
        expectRefused("(?:*)", at: 3, containing: "nothing before it")
        expectRefused("{2}", at: 0, containing: "nothing before it")
        expectRefused("a**", at: 2, containing: "cannot follow another quantifier")
        expectRefused("a+{2}", at: 2, containing: "cannot follow another quantifier")
        expectRefused("a{100}{100}", at: 6, containing: "cannot follow another quantifier")
        expectRefused("a*+", at: 2, containing: "possessive")
        expectRefused("a{2", at: 1, containing: "repeat count")
        expectRefused("a{,3}", at: 1, containing: "repeat count")
        expectRefused("a{x}", at: 1, containing: "repeat count")
        expectRefused("a{2,x}", at: 1, containing: "repeat count")
        expectRefused("a{", at: 1, containing: "write `\\{`")
        expectRefused("a{101}", at: 1, containing: "limited to 100")
        expectRefused("a{1,101}", at: 1, containing: "limited to 100")
        expectRefused("a{99999999999}", at: 1, containing: "limited to 100")
        expectRefused("a{3,2}", at: 1, containing: "maximum below its minimum")
        expectRefused("(a)\\1", at: 3, containing: "backreferences")
        expectRefused("(?=a)", at: 0, containing: "lookahead")
        expectRefused("(?!a)", at: 0, containing: "lookahead")
        expectRefused("(?<=a)b", at: 0, containing: "lookbehind")
        expectRefused("(?<!a)b", at: 0, containing: "lookbehind")
        expectRefused("(?<n>a)", at: 0, containing: "named groups")
        expectRefused("(?P<n>a)", at: 0, containing: "named groups")
        expectRefused("(?>a)", at: 0, containing: "atomic")
        expectRefused("(?i)a", at: 0, containing: "inline flags")
        expectRefused("\\bword", at: 0, containing: "anchor `\\b`")
        expectRefused("\\Aa", at: 0, containing: "anchor")
        expectRefused("\\p{L}", at: 0, containing: "Unicode property")
        expectRefused("x\\q", at: 1, containing: "unknown escape `\\q`")
        expectRefused("\\x41", at: 0, containing: "unknown escape")
        expectRefused("\\é", at: 0, containing: "unknown escape")
        expectRefused("ab\\", at: 2, containing: "lone `\\`")
        expectRefused("[a\\", at: 2, containing: "lone `\\`")
    }

    @Test func limits() throws {
        // Pattern length, in UTF-8 bytes.
        #expect(try LinearRegex(String(repeating: "a", count: 256)).matches(String(repeating: "a", count: 256)))
        expectRefused(String(repeating: "a", count: 257), at: 0, containing: "257 bytes long; the limit is 256")
        expectRefused(String(repeating: "é", count: 129), at: 0, containing: "258 bytes")
        // Group nesting.
        let deep = String(repeating: "(", count: 32) + "a" + String(repeating: ")", count: 32)
        #expect(try LinearRegex(deep).matches("a"))
        expectRefused(String(repeating: "(", count: 33) + "a" + String(repeating: ")", count: 33), at: 32, containing: "nested more than 32")
        // Instructions: counted repeats are costed, not expanded, and refused at the
        // quantifier that crosses the limit.
        let largest = try LinearRegex("(?:a{50}){99}")
        #expect(largest.program.count == 4_951)
        #expect(largest.matches(String(repeating: "a", count: 4_950)))
        #expect(!largest.matches(String(repeating: "a", count: 4_949)))
        expectRefused("(?:a{50}){100}", at: 9, containing: "more than 5000 instructions")
        expectRefused("(a{100}){100}", at: 8, containing: "more than 5000 instructions")
        expectRefused("((a{100}){100}){100}", at: 9, containing: "more than 5000 instructions")
        expectRefused("(?:(?:(?:(?:a{100}){100}){100}){100}){100}", at: 19, containing: "more than 5000 instructions")
        expectRefused(repeated("a{0,100}", 31, separator: ""), at: 192, containing: "more than 5000 instructions")
        expectRefused("[a-z]{100}" + "(?:x{100}){49}", at: 10, containing: "more than 5000 instructions")
    }

    /// The parser's cost formulas are what the compiler emits, so the instruction limit is
    /// exact.
    @Test func costMatchesTheCompiledProgram() throws {
        let patterns = [
            "", "a", "abc", "a|b", "a|b|c", "(a|bc)*", "a+", "a{3}", "a{3,}", "a{2,5}", "(ab){0,3}", "(?:a|b){2,}",
            "^x$", "[a-z]?", "(a*)*", "((a|b){2}c){3,4}", "(a{0}|b{1,1}|c{0,})+", ".*x", "(?:){5}", "a{0,100}",
        ]
        for pattern in patterns {
            var parser = LinearRegexParser(pattern)
            let node = try parser.parse()
            var compiler = LinearRegex.Compiler(caseInsensitive: false)
            compiler.compile(node)
            let regex = try LinearRegex(pattern)
            #expect(regex.program.count == compiler.program.count + 1, "/\(pattern)/")
            // Every jump target is inside the program.
            for instruction in regex.program {
                switch instruction {
                case .split(let first, let second):
                    #expect(first >= 0 && first < regex.program.count && second >= 0 && second < regex.program.count, "/\(pattern)/")
                case .jump(let target):
                    #expect(target >= 0 && target < regex.program.count, "/\(pattern)/")
                default:
                    break
                }
            }
        }
        // Each counted copy is an instruction: a{100} is 100 of them, plus `match`.
        #expect(try LinearRegex("a{100}").program.count == 101)
        #expect(try LinearRegex("a{0,100}").program.count == 201)
    }

    /// Random small patterns against Swift's own (backtracking) `Regex` on short texts,
    /// where backtracking is harmless: both engines must agree on match / no match.
    @Test func agreesWithSwiftRegexOnSmallPatterns() throws {
        var random = SplitMix64(seed: 0x5EED_0014)
        var compared = 0
        for _ in 0..<1_500 {
            let pattern = randomPattern(depth: 3, using: &random)
            let ignoringCase = random.next() % 4 == 0
            let ours = try LinearRegex(pattern, caseInsensitive: ignoringCase)
            var reference = try Regex(pattern)
            if ignoringCase { reference = reference.ignoresCase() }
            for _ in 0..<12 {
                let length = Int(random.next() % 7)
                let text = String((0..<length).map { _ in Array("abAB-")[Int(random.next() % 5)] })
                let expected = (try reference.firstMatch(in: text)) != nil
                #expect(ours.matches(text) == expected, "/\(pattern)/\(ignoringCase ? "i" : "") against \(text.debugDescription)")
                compared += 1
            }
        }
        #expect(compared == 18_000)
    }

    /// Whatever the pattern, compiling answers (a program or an error) and matching never
    /// traps.
    @Test func neverTraps() {
        var random = SplitMix64(seed: 42)
        let alphabet = Array("ab.*+?|()[]{}^$\\-,0129dDwWsSnt:=!<>P/é\n")
        var compiled = 0
        for _ in 0..<20_000 {
            let length = Int(random.next() % 16)
            let pattern = String((0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
            guard let regex = try? LinearRegex(pattern, caseInsensitive: random.next() % 2 == 0) else { continue }
            compiled += 1
            _ = regex.matches("ab\n-é1 B,")
            _ = regex.matches("")
        }
        #expect(compiled > 1_000)
    }

    // MARK: - Helpers

    private func randomPattern(depth: Int, using random: inout SplitMix64) -> String {
        let choice = depth == 0 ? Int(random.next() % 5) : Int(random.next() % 12)
        switch choice {
        case 0: return "a"
        case 1: return "b"
        case 2: return ["[ab]", "[^a]", "[a-b]", "[-a]", "\\w", "\\W"][Int(random.next() % 6)]
        case 3: return "."
        case 4: return ["^", "$", "\\-"][Int(random.next() % 3)]
        case 5, 6:
            return randomPattern(depth: depth - 1, using: &random) + randomPattern(depth: depth - 1, using: &random)
        case 7:
            return "(" + randomPattern(depth: depth - 1, using: &random) + "|" + randomPattern(depth: depth - 1, using: &random) + ")"
        default:
            let quantifier = ["*", "+", "?", "{2}", "{0,2}", "{1,}", "*?", "+?"][Int(random.next() % 8)]
            return "(?:" + randomPattern(depth: depth - 1, using: &random) + ")" + quantifier
        }
    }
}

/// A small seeded generator, so a failing random case reproduces.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
