@testable import GantryPipeline
import Testing

@Suite("Pipeline parser", .timeLimit(.minutes(1)))
struct PipelineParserTests {
    let parser = PipelineParser(file: "ci.yml")

    func expectError(_ yaml: String, line: Int?, column: Int? = nil, containing text: String) {
        do {
            _ = try parser.parse(yaml)
            Issue.record("expected an error containing '\(text)'")
        } catch {
            #expect(error.file == "ci.yml")
            #expect(error.line == line, "\(error)")
            if let column { #expect(error.column == column, "\(error)") }
            #expect(error.message.contains(text), "\(error)")
        }
    }

    @Test func parsesTheFirstSubset() throws {
        let definition = try parser.parse(
            """
            env:
              GLOBAL: "1"
            steps:
              - key: build
                name: Build it
                command: make
                env: {CC: clang}
                agents: {os: linux, queue: fast}
                timeout: 1h30m
              - key: test
                command:
                  - make test
                  - make lint
                depends_on: build
              - command: echo anonymous
                depends_on: [build, test]
            """)
        #expect(definition.env == ["GLOBAL": "1"])
        #expect(definition.steps.count == 3)
        let build = definition.steps[0]
        #expect(build.name == "Build it" && build.commands == ["make"] && build.env == ["CC": "clang"])
        #expect(build.agents == ["os": "linux", "queue": "fast"])
        #expect(build.timeoutSeconds == 5400)
        #expect(definition.steps[1].commands == ["make test", "make lint"])
        #expect(definition.steps[1].dependsOn == ["build"])
        #expect(definition.steps[2].key == "step-3")
        #expect(definition.steps[2].dependsOn == ["build", "test"])
    }

    @Test func retryAndCancelGrace() throws {
        let definition = try parser.parse(
            """
            steps:
              - key: a
                command: x
                cancel_grace: 30s
                retry:
                  automatic:
                    - {reason: agent_lost, limit: 3}
                    - {exit_status: 75, limit: 1}
                    - {exit_status: "*", limit: 2}
              - key: b
                command: y
                retry: {automatic: false}
              - key: c
                command: z
            """)
        #expect(definition.steps[0].cancelGraceSeconds == 30)
        #expect(definition.steps[0].retry == [RetryRule(.agentLost, limit: 3), RetryRule(.exitStatus(75), limit: 1), RetryRule(.anyExitStatus, limit: 2)])
        #expect(definition.steps[1].retry.isEmpty)
        #expect(definition.steps[2].retry == RetryRule.defaults)
        #expect(definition.steps[2].cancelGraceSeconds == 10)
        expectError("steps:\n  - command: x\n    retry: {automatic: [{reason: flaky}]}\n", line: 3, containing: "the only retry `reason` is `agent_lost`")
        expectError("steps:\n  - command: x\n    retry: {automatic: [{exit_status: 75, limit: 99}]}\n", line: 3, containing: "`limit` must be")
        expectError("steps:\n  - command: x\n    retry: {manual: true}\n", line: 3, containing: "unknown `retry` key `manual`")
    }

    @Test func durations() {
        #expect(PipelineParser.parseDuration("90") == 90)
        #expect(PipelineParser.parseDuration("90s") == 90)
        #expect(PipelineParser.parseDuration("15m") == 900)
        #expect(PipelineParser.parseDuration("2h") == 7200)
        #expect(PipelineParser.parseDuration("1h30m") == 5400)
        #expect(PipelineParser.parseDuration("1x") == nil)
        #expect(PipelineParser.parseDuration("m") == nil)
        #expect(PipelineParser.parseDuration("10m5") == nil)
    }

    @Test func unknownStepKeyPointsAtIt() {
        expectError("steps:\n  - key: a\n    command: x\n    retries: 2\n", line: 4, column: 5, containing: "unknown step key `retries`")
    }

    @Test func unknownTopLevelKey() {
        expectError("stepz:\n  - command: x\n", line: 1, column: 1, containing: "unknown top-level key `stepz`")
    }

    @Test func invalidYAMLSaysWhere() {
        expectError("steps:\n  - key: a\n    command: [oops\n", line: 4, containing: "invalid YAML")
    }

    @Test func structuralErrors() {
        expectError("", line: nil, containing: "empty")
        expectError("- a\n- b\n", line: 1, containing: "expected a mapping with `steps:`")
        expectError("env: {}\n", line: 1, containing: "missing `steps:`")
        expectError("steps: []\n", line: 1, containing: "`steps` is empty")
        expectError("steps: echo\n", line: 1, containing: "`steps` must be a list")
        expectError("steps:\n  - echo hi\n", line: 2, containing: "must be a mapping")
        expectError("steps:\n  - key: a\n", line: 2, containing: "has no `command`")
        expectError("steps:\n  - key: a\n    command: ''\n", line: 3, containing: "`command` is empty")
        expectError("steps:\n  - key: a\n    command: x\n    env: [1]\n", line: 4, containing: "`env` must be a mapping")
        expectError("steps:\n  - key: a\n    command: x\n    timeout: soon\n", line: 4, containing: "`timeout` must be a positive duration")
        expectError("steps:\n  - key: 'a b'\n    command: x\n", line: 2, containing: "may contain only")
    }

    @Test func duplicateMappingKeysAreReportedWithTheirLocation() {
        expectError("steps:\n  - key: a\n    command: x\n    command: y\n", line: 3, containing: "duplicate key `command`")
    }

    @Test func dependencyErrors() {
        expectError(
            "steps:\n  - key: a\n    command: x\n  - key: a\n    command: y\n", line: 4, containing: "duplicate step key `a`")
        expectError(
            "steps:\n  - key: a\n    command: x\n    depends_on: b\n", line: 4, containing: "depends on `b`, which is not a step key")
        expectError("steps:\n  - key: a\n    command: x\n    depends_on: a\n", line: 4, containing: "depends on itself")
        expectError(
            "steps:\n  - key: a\n    command: x\n    depends_on: c\n  - key: b\n    command: x\n    depends_on: a\n  - key: c\n    command: x\n    depends_on: b\n",
            line: 4, containing: "dependency cycle: a → c → b → a")
    }
}
