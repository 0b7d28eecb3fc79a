import FuzzSupport
import GantryPipeline

/// Bytes (as UTF-8, invalid sequences replaced) → an `if:` condition and the build it is
/// evaluated against: the first line is the expression, the rest is the commit message
/// (also the branch, tag and an env value, cut short), so the regex engine meets hostile
/// patterns and hostile text at once.
///
/// Properties checked (a violation traps; a slow input is a libFuzzer timeout):
/// - parsing never traps, and refuses with an offset inside the expression (or at its end);
/// - an accepted expression evaluates without trapping, twice to the same answer;
/// - its cost is never negative, and an expression without a regex costs nothing.
@main
enum ConditionFuzz {
    static func main() {
        Fuzzer.main(seeds: seeds, testOneInput: { data, count in
            ConditionFuzz.run(Fuzzer.bytes(data, count))
            return 0
        })
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        let text = String(decoding: input, as: UTF8.self)
        let (expression, rest) = split(text)
        let parsed: ConditionExpression
        do {
            parsed = try ConditionExpression(parsing: expression)
        } catch {
            if error.offset < 0 || error.offset > expression.count {
                Fuzzer.fail("offset \(error.offset) outside an expression of \(expression.count) characters")
            }
            return
        }
        let short = String(rest.prefix(200))
        let context = ConditionContext(
            branch: short, tag: short, commit: String(short.prefix(40)), message: rest, source: "api",
            env: ["NIGHTLY": short, "LEVEL": "1"])
        let first = parsed.evaluate(context)
        if parsed.evaluate(context) != first { Fuzzer.fail("two evaluations of \(expression.debugDescription) differ") }
        let cost = parsed.cost(context)
        if cost < 0 { Fuzzer.fail("negative cost \(cost) for \(expression.debugDescription)") }
        if !expression.contains("=~") && !expression.contains("!~") && cost != 0 {
            Fuzzer.fail("\(expression.debugDescription) has no regex but costs \(cost)")
        }
    }

    static func split(_ text: String) -> (String, String) {
        guard let newline = text.firstIndex(of: "\n") else { return (text, "") }
        return (String(text[..<newline]), String(text[text.index(after: newline)...]))
    }

    static func seeds() throws -> [Seed] {
        let texts = [
            "branch == \"main\"\n",
            "branch == \"main\" && !(message =~ /skip deploy/)\nfix: things\n\nskip deploy",
            "tag =~ /^v[0-9]+\\.[0-9]+/\nv1.2.3",
            "source == \"schedule\" || env.NIGHTLY == \"1\"\n1",
            "message =~ /\\[(skip|no) (ci|deploy)\\]/i\nWIP [Skip CI]",
            "message =~ /(a+)+$/\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
            "message =~ /(.*a){20}q/\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "message =~ /[^\\s\\d]{2,5}x?|\\w*/\nÉté 2026 ✓",
            "!(branch != 'release' || tag)\nrelease",
            "((((branch))))\nx",
            "branch =~ \"main\"\n",
            "message =~ /(?=x)/\n",
            "message =~ /a{100}{100}/\n",
        ]
        return texts.enumerated().map { Seed("condition-\($0.offset)", Array($0.element.utf8)) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    ConditionFuzz.run(Fuzzer.bytes(data, count))
    return 0
}
