@testable import GantryPipeline
import Testing

@Suite("Condition expressions", .timeLimit(.minutes(1)))
struct ConditionExpressionTests {
    private let main = ConditionContext(
        branch: "main", tag: "", commit: "0123abcd", message: "Fix the build\n\nskip deploy for now", source: "api",
        env: ["NIGHTLY": "1", "EMPTY": "", "TARGET": "staging"])

    /// Parses and evaluates `text`; records an issue (and answers nil) if it is refused.
    private func evaluate(
        _ text: String, _ context: ConditionContext? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) -> Bool? {
        do {
            return try ConditionExpression(parsing: text).evaluate(context ?? main)
        } catch {
            Issue.record("`\(text)` was refused: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// Checks that `text` is refused at Character `offset` with a message containing `message`.
    private func expectRefused(
        _ text: String, at offset: Int, containing message: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            _ = try ConditionExpression(parsing: text)
            Issue.record("`\(text)` parsed; expected an error containing '\(message)'", sourceLocation: sourceLocation)
        } catch {
            #expect(error.offset == offset, "`\(text)`: \(error)", sourceLocation: sourceLocation)
            #expect(error.message.contains(message), "`\(text)`: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func documentedExamples() {
        let tagged = ConditionContext(branch: "", tag: "v1.4.0", message: "Release 1.4")
        let scheduled = ConditionContext(branch: "main", source: "schedule")
        let fork = ConditionContext(branch: "main", message: "Tidy up\n\n[skip deploy] not yet")

        #expect(evaluate(#"branch == "main" && !(message =~ /skip deploy/)"#, ConditionContext(branch: "main", message: "Fix")) == true)
        #expect(evaluate(#"branch == "main" && !(message =~ /skip deploy/)"#) == false)
        #expect(evaluate(#"branch == "main" && !(message =~ /skip deploy/)"#, fork) == false)
        #expect(evaluate(#"branch == "main" && !(message =~ /skip deploy/)"#, tagged) == false)
        #expect(evaluate(#"tag =~ /^v[0-9]+\./"#, tagged) == true)
        #expect(evaluate(#"tag =~ /^v[0-9]+\./"#, ConditionContext(tag: "nightly-2024")) == false)
        #expect(evaluate(#"source == "schedule" || env.NIGHTLY == "1""#, scheduled) == true)
        #expect(evaluate(#"source == "schedule" || env.NIGHTLY == "1""#, ConditionContext(env: ["NIGHTLY": "1"])) == true)
        #expect(evaluate(#"source == "schedule" || env.NIGHTLY == "1""#, ConditionContext(env: ["NIGHTLY": "0"])) == false)
        #expect(evaluate(#"tag || branch =~ /^release\//"#, ConditionContext(branch: "release/2.0")) == true)
        #expect(evaluate(#"tag || branch =~ /^release\//"#, ConditionContext(branch: "main")) == false)
        #expect(evaluate(#"message !~ /\[(ci|deploy) skip\]/i"#, ConditionContext(message: "x [CI SKIP]")) == false)
        #expect(evaluate(#"message !~ /\[(ci|deploy) skip\]/i"#, ConditionContext(message: "x")) == true)
    }

    @Test func everyOperator() {
        #expect(evaluate(#"branch == "main""#) == true)
        #expect(evaluate(#"branch == "mainline""#) == false)
        #expect(evaluate(#""main" == branch"#) == true)
        #expect(evaluate(#"branch != "main""#) == false)
        #expect(evaluate(#"branch != "dev""#) == true)
        #expect(evaluate(#"branch =~ /ai/"#) == true)
        #expect(evaluate(#"branch =~ /^ai/"#) == false)
        #expect(evaluate(#"branch !~ /ai/"#) == false)
        #expect(evaluate(#"branch !~ /^ai/"#) == true)
        #expect(evaluate("true && true") == true)
        #expect(evaluate("true && false") == false)
        #expect(evaluate("false && true") == false)
        #expect(evaluate("false || true") == true)
        #expect(evaluate("false || false") == false)
        #expect(evaluate("!true") == false)
        #expect(evaluate("!false") == true)
        #expect(evaluate("true") == true)
        #expect(evaluate("false") == false)
        #expect(evaluate("commit == \"0123abcd\" && source == \"api\"") == true)
        #expect(evaluate(#"branch==("main")"#) == true)
        #expect(evaluate("\n  branch == 'main'\n  && tag == ''\n") == true)
        #expect(evaluate("message =~ /^skip/") == false)
        #expect(evaluate("message =~ /skip deploy for now$/") == true)
        #expect(evaluate("message =~ /^Fix.*build$/") == false)
        #expect(evaluate("message =~ /^Fix.*build\\n/") == true)
    }

    @Test func precedenceAndAssociativity() {
        // `&&` binds tighter than `||`.
        #expect(evaluate("true || false && false") == true)
        #expect(evaluate("(true || false) && false") == false)
        #expect(evaluate("false && false || true") == true)
        #expect(evaluate("false && (false || true)") == false)
        // `!` binds tighter than `&&` and `||`.
        #expect(evaluate("!false && false") == false)
        #expect(evaluate("!(false && false)") == true)
        #expect(evaluate("!true || true") == true)
        // Comparisons bind tighter than `&&`, `!` tighter than comparisons (see the type error test).
        #expect(evaluate(#"branch == "main" && tag == """#) == true)
        #expect(evaluate(#"!(branch == "main") || tag == """#) == true)
        #expect(evaluate(#"branch == "dev" || branch == "main" && tag == "x""#) == false)
        // Chains of the same operator, and stacked `!`.
        #expect(evaluate("false || false || false || true") == true)
        #expect(evaluate("true && true && true && false") == false)
        #expect(evaluate("!!true") == true)
        #expect(evaluate("!!!true") == false)
        #expect(evaluate("((((true))))") == true)
    }

    @Test func shortCircuitKeepsResultsExact() {
        // The right side is evaluated only when needed; results are still exact.
        #expect(evaluate("tag == \"x\" && message =~ /(a+)+$/") == false)
        #expect(evaluate("branch == \"main\" || message =~ /(a+)+$/") == true)
    }

    @Test func stringsAndEscapes() {
        let context = ConditionContext(message: "say \"hi\"\tit's a \\ path\nnext")
        #expect(evaluate(#"message == "say \"hi\"\tit's a \\ path\nnext""#, context) == true)
        #expect(evaluate(#"message == 'say "hi"\tit\'s a \\ path\nnext'"#, context) == true)
        #expect(evaluate("message == 'say \"hi\"\tit\\'s a \\\\ path\nnext'", context) == true)  // a real tab and newline
        #expect(evaluate(#"branch == 'it\'s'"#, ConditionContext(branch: "it's")) == true)
        #expect(evaluate(#"branch == "it's""#, ConditionContext(branch: "it's")) == true)
        #expect(evaluate(#"branch == 'say "x"'"#, ConditionContext(branch: "say \"x\"")) == true)
        #expect(evaluate(#"branch == "\\""#, ConditionContext(branch: "\\")) == true)
        #expect(evaluate(#"branch == """#, ConditionContext()) == true)
        #expect(evaluate(#"branch == "🚀 launch""#, ConditionContext(branch: "🚀 launch")) == true)
        expectRefused(#"branch == "a\qb""#, at: 12, containing: "unknown escape `\\q` in a string")
        expectRefused(#"branch == "a\/b""#, at: 12, containing: "unknown escape")
    }

    /// `==` compares exactly, scalar by scalar: a branch name spelled with a combining
    /// accent is a different git ref from one spelled with the precomposed letter.
    @Test func equalityIsExactNotCanonical() {
        #expect("caf\u{E9}" == "cafe\u{301}")  // Swift's String equality would say equal
        #expect(evaluate("branch == \"caf\u{E9}\"", ConditionContext(branch: "cafe\u{301}")) == false)
        #expect(evaluate("branch != \"caf\u{E9}\"", ConditionContext(branch: "cafe\u{301}")) == true)
        #expect(evaluate("branch == \"caf\u{E9}\"", ConditionContext(branch: "caf\u{E9}")) == true)
    }

    @Test func truthiness() {
        #expect(evaluate("tag") == false)
        #expect(evaluate("!tag") == true)
        #expect(evaluate("tag", ConditionContext(tag: "v1")) == true)
        #expect(evaluate("branch && commit") == true)
        #expect(evaluate("branch && tag") == false)
        #expect(evaluate("tag || branch") == true)
        #expect(evaluate("env.NIGHTLY") == true)
        #expect(evaluate("env.EMPTY") == false)
        #expect(evaluate("env.MISSING") == false)
        #expect(evaluate(#""""#) == false)
        #expect(evaluate(#""x""#) == true)
        #expect(evaluate("('')") == false)
        #expect(evaluate("source") == true)
        #expect(evaluate("source", ConditionContext(source: "")) == false)
    }

    @Test func environmentLookups() {
        #expect(evaluate(#"env.TARGET == "staging""#) == true)
        #expect(evaluate(#"env.MISSING == """#) == true)
        #expect(evaluate(#"env.MISSING != "x""#) == true)
        #expect(evaluate(#"env.EMPTY == env.MISSING"#) == true)
        #expect(evaluate(#"env.TARGET =~ /^stag/"#) == true)
        #expect(evaluate(#"env.nightly == "1""#) == false)  // names are case-sensitive
        #expect(evaluate(#"env.A_1 == "x""#, ConditionContext(env: ["A_1": "x"])) == true)
        #expect(evaluate(#"env.branch == "x""#, ConditionContext(branch: "y", env: ["branch": "x"])) == true)
        #expect(evaluate(#"env.true"#, ConditionContext(env: ["true": "yes"])) == true)
    }

    @Test func unknownVariablesAreSyntaxErrors() {
        expectRefused(#"branch == "main" && brnch == "x""#, at: 20, containing: "unknown variable `brnch`")
        expectRefused("Branch", at: 0, containing: "`branch`, `tag`, `commit`, `message`, `source` and `env.NAME`")
        expectRefused("message && ref", at: 11, containing: "unknown variable `ref`")
        expectRefused("env == \"x\"", at: 0, containing: "write `env.NAME`")
        expectRefused("env.", at: 0, containing: "write `env.NAME`")
        expectRefused("env.A.B", at: 0, containing: "write `env.NAME`")
        expectRefused("branch.name", at: 0, containing: "unknown variable `branch.name`")
        expectRefused("TRUE", at: 0, containing: "unknown variable `TRUE`")
    }

    @Test func typeErrorsAreFoundWhenParsing() {
        expectRefused("branch == /main/", at: 10, containing: "a regex can only be the right side of `=~` or `!~`")
        expectRefused("/main/ == branch", at: 0, containing: "a regex can only be the right side")
        expectRefused("/main/", at: 0, containing: "a regex alone is not a condition")
        expectRefused("tag && /v1/", at: 7, containing: "a regex alone is not a condition")
        expectRefused("!/v1/", at: 1, containing: "a regex alone is not a condition")
        expectRefused("(/v1/)", at: 0, containing: "a regex alone is not a condition")
        expectRefused(#"branch =~ "main""#, at: 10, containing: "`=~` needs a regex literal on its right")
        expectRefused(#"branch !~ "main""#, at: 10, containing: "write the pattern between slashes, not quotes")
        expectRefused("branch =~ tag", at: 10, containing: "`=~` needs a regex literal")
        expectRefused("/a/ =~ /b/", at: 0, containing: "a regex can only be the right side")
        expectRefused(#"!branch == "main""#, at: 0, containing: "write `!(a == b)`, or `a != b`")
        expectRefused(#"env.NIGHTLY == true"#, at: 15, containing: "write `\"true\"` in quotes")
        expectRefused(#"(tag == "") == (branch == "")"#, at: 0, containing: "`==` compares strings, but this side is a condition")
        expectRefused(#"branch != (tag || commit)"#, at: 10, containing: "`!=` compares strings")
        expectRefused("(branch == \"a\") =~ /x/", at: 0, containing: "`=~` compares strings")
    }

    @Test func comparisonsDoNotChain() {
        expectRefused(#"branch == "a" == "b""#, at: 14, containing: "comparisons cannot be chained")
        expectRefused(#"branch =~ /a/ == "b""#, at: 14, containing: "comparisons cannot be chained")
        expectRefused(#"branch != tag =~ /x/"#, at: 14, containing: "comparisons cannot be chained")
    }

    @Test func unclosedThingsPointAtWhereTheCloserBelongs() {
        expectRefused(#"(branch == "main""#, at: 17, containing: "expected `)` to close the `(` at column 1, found the end")
        expectRefused(#"!((branch == "x")"#, at: 17, containing: "expected `)` to close the `(` at column 2")
        expectRefused(#"(tag || branch tag)"#, at: 15, containing: "expected `)` to close the `(` at column 1, found `tag`")
        expectRefused(#"branch == "main") "#, at: 16, containing: "unmatched `)`")
        expectRefused(#"branch == "main"#, at: 15, containing: "expected `\"` to close the string that starts at column 11")
        expectRefused(#"branch == 'main"#, at: 15, containing: "expected `'` to close the string that starts at column 11")
        expectRefused(#"branch == "main\""#, at: 17, containing: "to close the string")
        expectRefused("message =~ /skip", at: 16, containing: "expected `/` to close the regex that starts at column 12")
        expectRefused(#"message =~ /skip\/"#, at: 18, containing: "expected `/` to close the regex")
        expectRefused("message =~ /a(b/", at: 15, containing: "invalid regex: expected `)` to close the `(` at column 14")
        expectRefused("message =~ /[ab/", at: 15, containing: "invalid regex: expected `]` to close the class `[` at column 13")
    }

    @Test func otherSyntaxErrors() {
        expectRefused("", at: 0, containing: "the condition is empty")
        expectRefused("  \n ", at: 4, containing: "the condition is empty")
        expectRefused("branch = \"main\"", at: 7, containing: "expected `==` or `=~`")
        expectRefused("tag & branch", at: 4, containing: "expected `&&`")
        expectRefused("tag | branch", at: 4, containing: "expected `||`")
        expectRefused("tag and branch", at: 4, containing: "expected `&&`, `||` or the end of the condition, found `and`")
        expectRefused("tag branch", at: 4, containing: "found `branch`")
        expectRefused("tag &&", at: 6, containing: "expected a variable, a string, a regex, `true`, `false`, `!` or `(`, found the end")
        expectRefused("&& tag", at: 0, containing: "found `&&`")
        expectRefused("()", at: 1, containing: "found `)`")
        expectRefused("branch == 1", at: 10, containing: "unexpected `1`")
        expectRefused("tag # comment", at: 4, containing: "unexpected `#`")
        expectRefused("message =~ /x/g", at: 14, containing: "unknown regex flag `g`")
        expectRefused("message =~ /x/m", at: 14, containing: "`^` and `$` always match at the start and end of the whole text")
        expectRefused("message =~ /x/ii", at: 15, containing: "the flag `i` is given twice")
        expectRefused("message =~ /(?=x)/", at: 12, containing: "invalid regex: lookahead")
        expectRefused(#"message =~ /a\1/"#, at: 13, containing: "backreferences")
        expectRefused("message =~ /a**/", at: 14, containing: "cannot follow another quantifier")
    }

    /// Offsets count Characters, not scalars or bytes, also inside regexes.
    @Test func offsetsAreInCharacters() {
        let text = "branch == \"e\u{301}\" || message =~ /(a/"
        #expect(text.count == 32)
        #expect(text.unicodeScalars.count == 33)
        expectRefused(text, at: 31, containing: "expected `)` to close the `(` at column 30")
        expectRefused("tag == \"日本\" || bad", at: 15, containing: "unknown variable `bad`")
        expectRefused("tag == \"👍🏽\" && message =~ /\\q/", at: 26, containing: "unknown escape `\\q`")
        // A quote followed by a combining mark still closes the string (the lexer walks scalars).
        expectRefused("branch == \"x\"\u{301}", at: 12, containing: "unexpected `\\u{0301}`")
    }

    @Test func limits() {
        // Expression length, in UTF-8 bytes.
        let longest = "'" + String(repeating: "a", count: 1_022) + "'"
        #expect(longest.utf8.count == 1_024)
        #expect(evaluate(longest) == true)
        expectRefused("'" + String(repeating: "a", count: 1_023) + "'", at: 1_024, containing: "1025 bytes long; the limit is 1024")
        expectRefused("'" + String(repeating: "é", count: 600) + "'", at: 512, containing: "1202 bytes long")
        expectRefused(String(repeating: "(", count: 100_000), at: 1_024, containing: "the limit is 1024")

        // Nesting of parentheses and `!`.
        #expect(evaluate(String(repeating: "(", count: 32) + "true" + String(repeating: ")", count: 32)) == true)
        expectRefused(String(repeating: "(", count: 33) + "true" + String(repeating: ")", count: 33), at: 32, containing: "nested more than 32 levels")
        #expect(evaluate(String(repeating: "!", count: 32) + "true") == true)
        expectRefused(String(repeating: "!", count: 33) + "true", at: 32, containing: "nested more than 32 levels")
        expectRefused(String(repeating: "!(", count: 17) + "tag" + String(repeating: ")", count: 17), at: 32, containing: "nested")
        // Long flat chains are not nesting.
        #expect(evaluate(repeated("tag", 200, separator: "||") + "||branch") == true)

        // Regex literals per expression.
        let sixteen = repeated("message =~ /zz/", 16, separator: " || ")
        #expect(evaluate(sixteen) == false)
        expectRefused(sixteen + " || tag =~ /y/", at: sixteen.count + 11, containing: "more than 16 regexes")

        // Pattern length (UTF-8 bytes between the slashes).
        #expect(evaluate("message =~ /" + String(repeating: "a", count: 256) + "/") == false)
        expectRefused("message =~ /" + String(repeating: "a", count: 257) + "/", at: 12, containing: "257 bytes long; the limit is 256")

        // Instructions per regex: counted repeats are costed, never expanded.
        expectRefused("message =~ /a{100}{100}/", at: 18, containing: "cannot follow another quantifier")
        expectRefused("message =~ /(?:a{100}){100}/", at: 22, containing: "more than 5000 instructions")
        expectRefused("message =~ /((a{100}){100}){100}/", at: 21, containing: "more than 5000 instructions")
        #expect(evaluate("message =~ /(?:a{50}){99}/") == false)

        // Instructions of all regexes together.
        let big = "message =~ /(?:a{50}){90}/"  // 4,501 instructions
        #expect(evaluate(big + " || " + big) == false)
        expectRefused(big + " || " + big + " || " + big, at: 2 * (big.count + 4) + 11, containing: "more than 10000 instructions in all")
    }

    /// Conditions matched against a 64 KiB commit message built to make a backtracking
    /// engine take exponential time. No time assertion: they finish at once because the
    /// engine is linear; a regression would hit the suite's time limit.
    @Test func hostileMessagesAreCheap() {
        let message = String(repeating: "a", count: 64 * 1024)
        let context = ConditionContext(branch: "main", message: message)
        #expect(evaluate("message =~ /^(a+)+$/", context) == true)
        #expect(evaluate("message =~ /(a|aa)*b/", context) == false)
        #expect(evaluate("message =~ /(.*)*x/", context) == false)
        #expect(evaluate("branch == \"main\" && !(message =~ /^(a|a?)+b$/i)", context) == true)
        #expect(evaluate("message =~ /(?:a{10}){10}b/ || message =~ /(?:a{10}){10}c/", context) == false)
    }

    /// Whatever the text, parsing answers (an expression or an error with an offset inside
    /// the text) and evaluation never traps.
    @Test func neverTraps() {
        var random = SplitMix64(seed: 14)
        let pieces = [
            "branch", "tag", "commit", "message", "source", "env.X", "env", "env.", "true", "false", "x", " ", "\n",
            "==", "!=", "=~", "!~", "=", "!", "&&", "||", "&", "|", "(", ")", "\"a\"", "'b'", "\"", "'", "\\", "/a+/",
            "/(a|b)*/i", "/", "/[^x]/", "/a{2,3}/", "/(?:/", "é", "\u{301}", "1", "#",
        ]
        let contexts = [
            main, ConditionContext(), ConditionContext(branch: "a", tag: "b", message: String(repeating: "ab", count: 500)),
        ]
        var parsed = 0
        for _ in 0..<20_000 {
            let count = Int(random.next() % 10)
            let text = (0..<count).map { _ in pieces[Int(random.next() % UInt64(pieces.count))] }.joined()
            do {
                let expression = try ConditionExpression(parsing: text)
                parsed += 1
                for context in contexts { _ = expression.evaluate(context) }
            } catch {
                #expect(error.offset >= 0 && error.offset <= text.count, "`\(text)`: \(error)")
                #expect(!error.message.isEmpty)
            }
        }
        #expect(parsed > 500)
    }

    @Test func errorDescription() {
        let error = ConditionSyntaxError(offset: 4, message: "expected `&&`")
        #expect(error.description == "column 5: expected `&&`")
    }
}
