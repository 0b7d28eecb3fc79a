@testable import GantryPipeline
import Testing

/// `if`, `when`, `soft_fail`, `priority` and `concurrency`.
@Suite("Pipeline language: step options", .timeLimit(.minutes(1)))
struct PipelineStepOptionsTests {
    func step(_ keys: String, sourceLocation: SourceLocation = #_sourceLocation) -> PipelineDefinition.Step? {
        expectPipeline("steps:\n  - command: x\n    \(keys)\n", sourceLocation: sourceLocation)?.steps.first
    }

    @Test func defaults() throws {
        let parsed = try #require(step("key: a"))
        #expect(parsed.condition == nil)
        #expect(parsed.when == .onSuccess)
        #expect(parsed.softFail == SoftFail.never)
        #expect(parsed.priority == 0)
        #expect(parsed.concurrency == nil)
        #expect(parsed.jobs.map(\.concurrency) == [nil])
    }

    @Test func conditionKeepsTextAndPlace() {
        #expect(
            step("if: branch == \"main\" && tag == \"\"")?.condition
                == StepCondition(text: "branch == \"main\" && tag == \"\"", location: .init(line: 3, column: 9)))
        // 1,024 bytes: `branch == "…"` (a valid expression, for when the parser checks them).
        let long = "branch == \"" + String(repeating: "a", count: 1012) + "\""
        #expect(long.utf8.count == 1024)
        #expect(step("if: '\(long)'")?.condition?.text == long)
        expectPipelineError(
            "steps:\n  - command: x\n    if: '\(long) '\n", line: 3, column: 9, containing: "`if` is 1025 bytes long; the limit is 1 KiB")
        expectPipelineError("steps:\n  - command: x\n    if: [a]\n", line: 3, column: 9, containing: "`if` must be an expression")
    }

    @Test func when() {
        #expect(
            expectPipeline(
                "steps:\n  - {key: a, command: x}\n  - {key: b, command: x, when: on_failure, depends_on: a}\n  - wait\n  - {key: c, command: x, when: always}\n  - {key: d, command: x, when: on_success}\n")?
                .steps.map(\.when) == [.onSuccess, .onFailure, .always, .onSuccess])
        expectPipelineError(
            "steps:\n  - command: x\n    when: on_failure\n", line: 3, column: 11,
            containing: "step `step-1` runs `when: on_failure`, so it needs something to follow: add `depends_on` or put it after a `wait`")
        expectPipelineError(
            "steps:\n  - {key: a, stage: s, command: x, when: always}\n", line: 2, column: 42,
            containing: "runs `when: always`, so it needs something to follow")
        expectPipelineError(
            "steps:\n  - command: x\n    when: failed\n", line: 3, column: 11,
            containing: "`when` must be one of `on_success`, `on_failure`, `always`, found the scalar `failed`")
    }

    @Test func softFailForms() {
        #expect(step("soft_fail: true")?.softFail == .always)
        #expect(step("soft_fail: false")?.softFail == SoftFail.never)
        #expect(step("soft_fail: [1, {exit_status: 75}, 255]")?.softFail == .exitStatuses([1, 75, 255]))
        #expect(step("soft_fail: [{exit_status: \"*\"}]")?.softFail == .always)
        #expect(step("soft_fail: [2, \"*\"]")?.softFail == .always)
        #expect(step("soft_fail: []")?.softFail == SoftFail.never)
        for (bad, column, message) in [
            ("[0]", 17, "a `soft_fail` exit status must be 1-255 or \"*\", found `0`"),
            ("[256]", 17, "must be 1-255"),
            ("[{exit_status: x}]", 31, "found `x`"),
            ("[{status: 1}]", 17, "each `soft_fail` entry must be an exit status such as `1` or `{exit_status: 1}`"),
            ("[1, 1]", 20, "`soft_fail` names exit status 1 twice"),
            ("maybe", 16, "`soft_fail` must be `true`, `false` or a list of exit statuses"),
            ("{exit_status: 1}", 16, "`soft_fail` must be `true`, `false` or a list"),
        ] {
            expectPipelineError("steps:\n  - command: x\n    soft_fail: \(bad)\n", line: 3, column: column, containing: message)
        }
    }

    @Test func priorityBounds() {
        #expect(step("priority: 1000")?.priority == 1000)
        #expect(step("priority: -1000")?.priority == -1000)
        #expect(step("priority: 7")?.priority == 7)
        for bad in ["1001", "-1001", "high", "1.5", "[1]"] {
            expectPipelineError(
                "steps:\n  - command: x\n    priority: \(bad)\n", line: 3, column: 15,
                containing: "`priority` must be a whole number from -1000 to 1000")
        }
    }

    @Test func concurrencyGroups() {
        #expect(step("concurrency: {group: deploy/production}")?.concurrency == ConcurrencyRule(group: "deploy/production"))
        #expect(
            step("concurrency: {group: \"device:pixel-8.a_b\", limit: 100, cancel_in_progress: true}")?.jobs.map(\.concurrency)
                == [ConcurrencyRule(group: "device:pixel-8.a_b", limit: 100, cancelInProgress: true)])
        #expect(step("concurrency: {group: \(String(repeating: "g", count: 100))}")?.concurrency?.group.count == 100)
        expectPipelineError(
            "steps:\n  - command: x\n    concurrency: {limit: 2}\n", line: 3, column: 18,
            containing: "`concurrency` needs a `group`")
        for bad in ["0", "101", "x"] {
            expectPipelineError(
                "steps:\n  - command: x\n    concurrency: {group: g, limit: \(bad)}\n", line: 3, column: 36,
                containing: "`concurrency.limit` must be a whole number from 1 to 100")
        }
        expectPipelineError(
            "steps:\n  - command: x\n    concurrency: {group: g, cancel_in_progress: yes}\n", line: 3, column: 49,
            containing: "`concurrency.cancel_in_progress` must be `true` or `false`")
        expectPipelineError(
            "steps:\n  - command: x\n    concurrency: {group: g, queue: 1}\n", line: 3, column: 29,
            containing: "unknown `concurrency` key `queue`")
        expectPipelineError(
            "steps:\n  - command: x\n    concurrency: deploy\n", line: 3, column: 18, containing: "`concurrency` must be a mapping")
        for bad in ["'deploy prod'", "'é'", "''", String(repeating: "g", count: 101)] {
            expectPipelineError(
                "steps:\n  - command: x\n    concurrency: {group: \(bad)}\n", line: 3, column: 26,
                containing: "`concurrency.group` must be 1-100 ASCII letters, digits, `.`, `_`, `-`, `/` or `:`")
        }
    }

    @Test func interpolatedConcurrencyGroupIsCheckedPerJob() throws {
        let parsed = try #require(
            expectPipeline("steps:\n  - command: x\n    concurrency: {group: \"deploy/{{ matrix.env }}\"}\n    matrix: {env: [staging, production]}\n")?
                .steps[0])
        #expect(parsed.concurrency?.group == "deploy/{{ matrix.env }}")
        #expect(parsed.jobs.map(\.concurrency?.group) == ["deploy/staging", "deploy/production"])
        expectPipelineError(
            "steps:\n  - command: x\n    concurrency: {group: \"deploy/{{ matrix.env }}\"}\n    matrix: {env: [ok, 'not ok']}\n", line: 3,
            column: 26, containing: "found `deploy/not ok`")
        expectPipelineError(
            "steps:\n  - command: x\n    concurrency: {group: \"{{matrix.env}}{{matrix.env}}\"}\n    matrix: {env: [\(String(repeating: "e", count: 51))]}\n",
            line: 3, column: 26, containing: "`concurrency.group` is 102 bytes long after interpolation; the limit is 100")
    }
}
