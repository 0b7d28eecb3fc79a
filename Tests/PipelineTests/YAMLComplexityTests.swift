@testable import GantryPipeline
import Testing

/// Finding 6 and the alias part of finding 8 of issue 10: YAML that is cheap to send but
/// expensive to compose or to expand is refused before Yams composes it.
@Suite("YAML complexity", .timeLimit(.minutes(1)))
struct YAMLComplexityTests {
    /// `a: &a [x,…]`, `b: &b [*a,…]`, … nested `levels` deep, then the last anchor used as a
    /// mapping key. Yams hashes a key node recursively to find duplicate keys, so without the
    /// guard composing this takes time proportional to width^levels: a 460-byte file of this
    /// shape froze the coordinator for 109 s; this one (12^10 ≈ 6·10^10 nodes) would take
    /// hours, so the test finishing at all shows the guard ran before Yams.
    static func keyBomb(levels: Int = 10, width: Int = 12) -> String {
        let names = (0..<levels).map { String(UnicodeScalar(UInt8(ascii: "a") + UInt8($0))) }
        var lines = ["a: &a [\(repeated("x", width, separator: ","))]"]
        for level in 1..<levels {
            lines.append("\(names[level]): &\(names[level]) [\(repeated("*" + names[level - 1], width, separator: ","))]")
        }
        lines.append("? *\(names[levels - 1])\n: v")
        return lines.joined(separator: "\n") + "\n"
    }

    @Test func aliasBombUsedAsAKeyIsRefusedBeforeComposing() {
        let bomb = Self.keyBomb()
        #expect(bomb.utf8.count < 460)
        // The running total passes 100,000 nodes while `e` (12^5 nodes) is being defined.
        expectPipelineError(bomb, line: 5, containing: "the YAML expands to more than 100000 nodes once aliases are expanded")
        // The same bomb followed by a syntax error: the check must not stop early and leave
        // the composing to Yams.
        expectPipelineError(bomb + "x: [unclosed\n", line: 5, containing: "expands to more than 100000 nodes")
    }

    @Test func aliasesInKeysAreRefusedEvenWhenSmall() {
        expectPipelineError("a: &a [x]\n? *a\n: v\n", line: 2, column: 3, containing: "the alias `*a` is used in a mapping key")
        expectPipelineError("a: &a x\n*a : v\n", line: 2, column: 1, containing: "the alias `*a` is used in a mapping key")
        expectPipelineError("a: &a x\n? [y, *a]\n: v\n", line: 2, column: 7, containing: "the alias `*a` is used in a mapping key")
        expectPipelineError("a: &a x\nb: {? {k: [*a]} : v}\n", line: 2, column: 12, containing: "is used in a mapping key")
        expectPipelineError(
            "steps:\n  - command: &c x\n    env: {*c : y}\n", line: 3, column: 11, containing: "aliases are not allowed in keys")
    }

    @Test func aliasExpansionBombInValuesIsRefused() {
        // Billion laughs in values: 10^9 nodes from a few hundred bytes.
        let names = "abcdefghi".map(String.init)
        var yaml = "env:\n  A: &a [\(repeated("x", 10))]\n"
        for level in 1..<names.count {
            yaml += "  \(names[level].uppercased()): &\(names[level]) [\(repeated("*" + names[level - 1], 10))]\n"
        }
        yaml += "steps:\n  - command: x\n"
        expectPipelineError(yaml, line: 6, containing: "the YAML expands to more than 100000 nodes")
    }

    @Test func aliasesMultiplyingOneLargeStepAreRefused() {
        // 80 KB that once became 400 jobs and 40 MB of database: one step with a 64 KiB
        // command, then 400 aliases of it (keyless steps get distinct keys).
        let command = String(repeating: "x", count: 64 * 1024)
        let yaml = "steps:\n  - &s {command: \(command)}\n" + repeated("  - *s", 400, separator: "\n") + "\n"
        #expect(yaml.utf8.count < 80 * 1024)
        expectPipelineError(yaml, line: 129, column: 5, containing: "the YAML's text expands to more than 8 MiB once aliases are expanded")
    }

    @Test func starsAndAmpersandsThatAreNotAliasesAreFine() {
        let definition = expectPipeline(
            """
            steps:
              # a comment with *alias and &anchor: ? *x : y
              - command: "echo *a &b"
              - command: ls *.txt && echo a&b *c
              - command: 'x: *y'
              - command: |
                  echo *z
                  ? *q : v
              - command: echo "it's *"
            """)
        #expect(definition?.steps.map(\.commands) == [["echo *a &b"], ["ls *.txt && echo a&b *c"], ["x: *y"], ["echo *z\n? *q : v\n"], ["echo \"it's *\""]])
    }

    /// GitLab-style reuse: anchors on values, aliases in later steps. Still fine.
    @Test func ordinaryAnchorsAndAliasesInValuesStillParse() {
        let definition = expectPipeline(
            """
            env:
              GOFLAGS: &goflags -mod=readonly
            steps:
              - key: build
                agents: &linux {os: linux, arch: x86_64}
                env: &env {CGO_ENABLED: "0", FLAGS: *goflags}
                commands: &setup
                  - &fetch git clone --quiet "$GANTRY_REPOSITORY" src
                  - make -C src deps
                retry: &retry {automatic: [{reason: agent_lost, limit: 2}, {exit_status: 75, limit: 1}]}
                timeout: &timeout 20m
              - key: test
                agents: *linux
                env: *env
                commands: [*fetch, make -C src test]
                retry: *retry
                timeout: *timeout
                depends_on: build
              - key: lint
                agents: *linux
                commands: *setup
                depends_on: [build]
            """)
        #expect(definition?.steps.count == 3)
        #expect(definition?.steps[1].agents == ["os": "linux", "arch": "x86_64"])
        #expect(definition?.steps[1].env == ["CGO_ENABLED": "0", "FLAGS": "-mod=readonly"])
        #expect(definition?.steps[1].commands.first == "git clone --quiet \"$GANTRY_REPOSITORY\" src")
        #expect(definition?.steps[1].timeoutSeconds == 1200)
        #expect(definition?.steps[2].retry == RetryRule.defaults)
        #expect(definition?.steps[1].retry == [RetryRule(.agentLost, limit: 2), RetryRule(.exitStatus(75), limit: 1)])
    }

    // MARK: - The budgets, exactly at and one past each limit

    func refusal(_ yaml: String) -> PipelineError? {
        do {
            try YAMLComplexityCheck(file: "ci.yml").check(yaml)
            return nil
        } catch {
            return error
        }
    }

    @Test func nodeBudgetAtAndPastTheLimit() {
        // 1 (outer list) + 9 (anchored list of 8) + 11,110 aliases × 9 = 100,000 nodes.
        let atLimit = "[&a [\(repeated("x", 8))], \(repeated("*a", 11_110))]"
        #expect(refusal(atLimit) == nil)
        let pastLimit = "[&a [\(repeated("x", 8))], \(repeated("*a", 11_110)), y]"
        #expect(refusal(pastLimit)?.message.contains("more than 100000 nodes") == true)
    }

    @Test func byteBudgetAtAndPastTheLimit() {
        // A 64 KiB scalar and 127 aliases of it: exactly 8 MiB of text.
        let scalar = String(repeating: "x", count: 64 * 1024)
        #expect(refusal("[&a \(scalar), \(repeated("*a", 127))]") == nil)
        #expect(refusal("[&a \(scalar), \(repeated("*a", 128))]")?.message.contains("more than 8 MiB") == true)
    }

    @Test func depthAtAndPastTheLimit() {
        let limit = PipelineLimits.maximumDepth
        #expect(refusal(String(repeating: "[", count: limit) + String(repeating: "]", count: limit)) == nil)
        let error = refusal(String(repeating: "[", count: limit + 1) + String(repeating: "]", count: limit + 1))
        #expect(error?.message.contains("nested more than 32 deep") == true)
        #expect(error?.line == 1 && error?.column == limit + 1)
        let thousand = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(refusal(thousand)?.message.contains("nested more than 32 deep") == true)
        // Deeper than libyaml's own limit (1000, which it hits while looking ahead for a
        // key): libyaml refuses before producing the first event, so the check has nothing
        // to refuse and Yams reports the same error without composing anything.
        for deep in [String(repeating: "[", count: 500_000), String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)] {
            #expect(refusal(deep) == nil)
            expectPipelineError(deep, line: 1, column: 1, containing: "invalid YAML: Maximum nesting level reached")
        }
    }
}
