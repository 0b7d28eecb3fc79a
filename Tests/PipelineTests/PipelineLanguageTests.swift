@testable import GantryPipeline
import Testing

/// `matrix:`, `parallelism:` and `{{matrix.NAME}}` interpolation: what each step expands
/// into, and where a bad reference is reported.
@Suite("Pipeline language: fan-out", .timeLimit(.minutes(1)))
struct PipelineLanguageTests {
    typealias Job = PipelineDefinition.Job

    @Test func matrixWithExcludeAndIncludeInFileOrder() throws {
        let definition = try #require(
            expectPipeline(
                """
                steps:
                  - key: test
                    command: swift test
                    matrix:
                      os: [linux, macos]
                      swift: [5.10, 6.10, "6.1"]
                      exclude:
                        - {os: macos, swift: 5.10}
                      include:
                        - {os: windows, swift: "6.1", experimental: "true"}
                        - {swift: "6.1", os: linux}
                """))
        let step = definition.steps[0]
        let expected: [[String: String]] = [
            ["os": "linux", "swift": "5.10"], ["os": "linux", "swift": "6.10"], ["os": "linux", "swift": "6.1"],
            ["os": "macos", "swift": "6.10"], ["os": "macos", "swift": "6.1"],
            ["os": "windows", "swift": "6.1", "experimental": "true"],
        ]
        // The second include duplicates (linux, 6.1) whatever its key order: not added.
        #expect(step.matrix == expected)
        #expect(step.jobs.map(\.matrix) == expected)
        #expect(
            step.jobs.map(\.name) == [
                "test (linux, 5.10)", "test (linux, 6.10)", "test (linux, 6.1)", "test (macos, 6.10)", "test (macos, 6.1)",
                "test (windows, 6.1, true)",
            ])
        #expect(step.jobs.allSatisfy { $0.commands == ["swift test"] && $0.parallelIndex == nil && $0.env.isEmpty })
        #expect(step.parallelism == nil)
        #expect(step.name == "test")
    }

    @Test func includeOnlyMatrix() throws {
        let step = try #require(
            expectPipeline(
                "steps:\n  - key: t\n    command: echo {{matrix.os}}\n    matrix:\n      include: [{os: linux}, {os: bsd, arch: arm64}]\n")?
                .steps[0])
        #expect(step.jobs.map(\.name) == ["t (linux)", "t (bsd, arm64)"])
        #expect(step.jobs.map(\.commands) == [["echo linux"], ["echo bsd"]])
    }

    @Test func interpolationInEveryAllowedPlace() throws {
        let definition = try #require(
            expectPipeline(
                """
                steps:
                  - key: build
                    name: "Build {{ matrix.os }}/{{matrix.arch}}"
                    commands:
                      - make OS={{matrix.os}} ARCH={{ matrix.arch }}
                      - echo '{{ .Version }} ${{ github.sha }} {{matrixx}}'
                    env: {TARGET: "{{matrix.os}}-{{matrix.arch}}", PLAIN: "{{ .Foo }}"}
                    agents: {os: "{{matrix.os}}", queue: builders}
                    concurrency: {group: "build/{{matrix.os}}:{{matrix.arch}}", limit: 3, cancel_in_progress: true}
                    matrix:
                      os: [linux, macos]
                      arch: [arm64]
                """))
        let step = definition.steps[0]
        // The step keeps its templates; each job carries the interpolated strings.
        #expect(step.name == "Build {{ matrix.os }}/{{matrix.arch}}")
        #expect(step.commands[0] == "make OS={{matrix.os}} ARCH={{ matrix.arch }}")
        #expect(step.concurrency == ConcurrencyRule(group: "build/{{matrix.os}}:{{matrix.arch}}", limit: 3, cancelInProgress: true))
        #expect(
            step.jobs == [
                Job(
                    name: "Build linux/arm64",
                    commands: ["make OS=linux ARCH=arm64", "echo '{{ .Version }} ${{ github.sha }} {{matrixx}}'"],
                    env: ["TARGET": "linux-arm64", "PLAIN": "{{ .Foo }}"], agents: ["os": "linux", "queue": "builders"],
                    matrix: ["os": "linux", "arch": "arm64"],
                    concurrency: ConcurrencyRule(group: "build/linux:arm64", limit: 3, cancelInProgress: true)),
                Job(
                    name: "Build macos/arm64",
                    commands: ["make OS=macos ARCH=arm64", "echo '{{ .Version }} ${{ github.sha }} {{matrixx}}'"],
                    env: ["TARGET": "macos-arm64", "PLAIN": "{{ .Foo }}"], agents: ["os": "macos", "queue": "builders"],
                    matrix: ["os": "macos", "arch": "arm64"],
                    concurrency: ConcurrencyRule(group: "build/macos:arm64", limit: 3, cancelInProgress: true)),
            ])
    }

    @Test func otherBracesAreKeptInPlainSteps() throws {
        let step = try #require(
            expectPipeline("steps:\n  - command: \"echo '{{ .Foo }}' {{matrix}} {{ matrix }} {{{x}}}\"\n    label: \"{{ .Name }}\"\n")?
                .steps[0])
        #expect(step.jobs == [Job(name: "{{ .Name }}", commands: ["echo '{{ .Foo }}' {{matrix}} {{ matrix }} {{{x}}}"], env: [:], agents: [:])])
    }

    @Test func valuesAreTakenAsWritten() throws {
        let step = try #require(
            expectPipeline("steps:\n  - key: t\n    command: use {{matrix.v}}\n    matrix: {v: [6.10, 010, true, ~, '']}\n")?.steps[0])
        #expect(step.jobs.map(\.commands) == [["use 6.10"], ["use 010"], ["use true"], ["use ~"], ["use "]])
        #expect(step.jobs.map(\.name) == ["t (6.10)", "t (010)", "t (true)", "t (~)", "t ()"])
    }

    /// A step without jobs would never end, and whatever waits on it would wait forever.
    @Test func aMatrixWithNoCombinationsIsRefused() {
        expectPipelineError(
            "steps:\n  - {key: a, command: x, matrix: {include: []}}\n  - wait\n  - {key: b, command: y}\n", line: 2,
            containing: "the matrix has no combinations")
    }

    @Test func referenceErrorsPointAtTheValue() {
        expectPipelineError(
            "steps:\n  - key: t\n    command: echo {{matrix.arch}}\n    matrix:\n      os: [linux]\n", line: 3, column: 14,
            containing: "`{{matrix.arch}}` is not defined by the matrix combination (os: linux), which has os")
        // An include may leave a dimension out; a reference to it then fails for that job.
        expectPipelineError(
            "steps:\n  - key: t\n    command: x\n    env: {S: \"{{matrix.swift}}\"}\n    matrix:\n      os: [linux]\n      swift: [\"6.1\"]\n      include: [{os: bsd}]\n",
            line: 4, column: 11, containing: "`{{matrix.swift}}` is not defined by the matrix combination (os: bsd)")
        expectPipelineError(
            "steps:\n  - command: echo {{ matrix.os }}\n", line: 2, column: 14,
            containing: "`{{matrix.os}}` is used, but step `step-1` has no `matrix:`")
        expectPipelineError(
            "steps:\n  - command: x\n    agents: {os: \"{{matrix.os}}\"}\n", line: 3, column: 14, containing: "has no `matrix:`")
        expectPipelineError(
            "steps:\n  - command: x\n    name: \"{{matrix.os}}\"\n", line: 3, column: 11, containing: "has no `matrix:`")
        expectPipelineError(
            "steps:\n  - command: x\n    concurrency: {group: \"{{matrix.os}}\"}\n", line: 3, column: 26, containing: "has no `matrix:`")
        expectPipelineError(
            "steps:\n  - command: x\n    concurrency: {group: \"environment:production\", cancel_in_progress: true}\n", line: 3,
            column: 26, containing: "must not start with `environment:`")
        expectPipelineError(
            "steps:\n  - command: echo {{ matrix.os | upper }}\n    matrix: {os: [a]}\n", line: 2, column: 14,
            containing: "`{{ matrix.os | upper }}` is not a matrix reference: write `{{matrix.NAME}}`")
        expectPipelineError(
            "steps:\n  - command: echo {{matrix.}}\n    matrix: {os: [a]}\n", line: 2, column: 14, containing: "is not a matrix reference")
    }

    @Test func matrixShapeErrors() {
        expectPipelineError(
            "steps:\n  - command: x\n    matrix: [linux, macos]\n", line: 3, column: 13,
            containing: "`matrix` must be a mapping of dimension names to lists of values such as `{os: [linux, macos], swift: [\"6.0\", \"6.1\"]}`")
        expectPipelineError("steps:\n  - command: x\n    matrix: linux\n", line: 3, column: 13, containing: "found the scalar `linux`")
        expectPipelineError(
            "steps:\n  - command: x\n    matrix: {os: linux}\n", line: 3, column: 18,
            containing: "`matrix.os` must be a list of values such as `[linux, macos]`")
        expectPipelineError("steps:\n  - command: x\n    matrix: {os: []}\n", line: 3, column: 18, containing: "`matrix.os` has no values")
        expectPipelineError("steps:\n  - command: x\n    matrix: {}\n", line: 3, column: 13, containing: "`matrix` has no dimensions")
        expectPipelineError(
            "steps:\n  - command: x\n    matrix: {os: [a, a]}\n", line: 3, column: 22, containing: "`matrix.os` lists `a` twice")
        expectPipelineError(
            "steps:\n  - command: x\n    matrix: {os: [[a]]}\n", line: 3, column: 19, containing: "values must be plain values")
        expectPipelineError(
            "steps:\n  - command: x\n    matrix: {o.s: [a]}\n", line: 3, column: 14,
            containing: "matrix name `o.s` must be 1-64 ASCII letters, digits, `_` or `-`")
        expectPipelineError(
            "steps:\n  - command: x\n    matrix:\n      os: [a, b]\n      exclude: [{os: a}, {os: b}]\n", line: 5, column: 16,
            containing: "`exclude` removes every combination of the matrix")
        expectPipelineError(
            "steps:\n  - command: x\n    matrix:\n      os: [a, b]\n      exclude: [{arch: a}]\n", line: 5, column: 18,
            containing: "`matrix.exclude` names `arch`, which is not a dimension (dimensions: os)")
        expectPipelineError(
            "steps:\n  - command: x\n    matrix:\n      os: [a, b]\n      exclude: [{os: c}]\n", line: 5, column: 22,
            containing: "`matrix.exclude` names `os: c`, which is not a value of `os` (values: a, b)")
        expectPipelineError(
            "steps:\n  - command: x\n    matrix:\n      os: [a]\n      include: [{}]\n", line: 5, column: 17,
            containing: "each `matrix.include` entry must be a non-empty mapping")
        expectPipelineError(
            "steps:\n  - command: x\n    matrix:\n      os: [a]\n      exclude: {os: a}\n", line: 5, column: 16,
            containing: "`matrix.exclude` must be a list of mappings")
    }

    @Test func parallelismSetsTheEnvironmentAndNames() throws {
        let step = try #require(
            expectPipeline(
                "steps:\n  - key: shard\n    name: Shard\n    command: run\n    env: {GANTRY_PARALLEL_JOB: x, A: b}\n    parallelism: 3\n")?
                .steps[0])
        #expect(step.parallelism == 3)
        #expect(step.matrix == nil)
        #expect(
            step.jobs == (0..<3).map { index in
                Job(
                    name: "Shard \(index + 1)/3", commands: ["run"],
                    env: ["A": "b", "GANTRY_PARALLEL_JOB": "\(index)", "GANTRY_PARALLEL_JOB_COUNT": "3"], agents: [:],
                    parallelIndex: index)
            })
        // The step keeps its own env as written.
        #expect(step.env == ["GANTRY_PARALLEL_JOB": "x", "A": "b"])
        #expect(expectPipeline("steps:\n  - command: x\n    parallelism: 1\n")?.steps[0].jobs.map(\.name) == ["step-1 1/1"])
        #expect(expectPipeline("steps:\n  - command: x\n    parallelism: 256\n")?.steps[0].jobs.count == 256)
        for bad in ["0", "257", "-1", "two", "[2]"] {
            expectPipelineError(
                "steps:\n  - command: x\n    parallelism: \(bad)\n", line: 3, column: 18,
                containing: "`parallelism` must be a whole number from 1 to 256")
        }
    }

    @Test func matrixTimesParallelism() throws {
        let step = try #require(
            expectPipeline(
                "steps:\n  - key: t\n    command: test {{matrix.os}}\n    parallelism: 2\n    matrix: {os: [linux, macos]}\n")?.steps[0])
        #expect(step.jobs.map(\.name) == ["t (linux) 1/2", "t (linux) 2/2", "t (macos) 1/2", "t (macos) 2/2"])
        #expect(step.jobs.map(\.commands) == [["test linux"], ["test linux"], ["test macos"], ["test macos"]])
        #expect(step.jobs.map(\.parallelIndex) == [0, 1, 0, 1])
        #expect(step.jobs.map { $0.env["GANTRY_PARALLEL_JOB"] } == ["0", "1", "0", "1"])
        #expect(step.jobs.allSatisfy { $0.env["GANTRY_PARALLEL_JOB_COUNT"] == "2" })
        #expect(step.jobs.map { $0.matrix["os"] } == ["linux", "linux", "macos", "macos"])
        // A name with references is used as interpolated, with the copy appended.
        let named = try #require(
            expectPipeline(
                "steps:\n  - name: \"on {{matrix.os}}\"\n    command: x\n    parallelism: 2\n    matrix: {os: [linux]}\n")?.steps[0])
        #expect(named.jobs.map(\.name) == ["on linux 1/2", "on linux 2/2"])
    }

    @Test func aPlainStepIsOneJobEqualToIt() throws {
        let step = try #require(
            expectPipeline(
                "steps:\n  - key: a\n    name: A\n    command: [x, y]\n    env: {E: v}\n    agents: {os: linux}\n    concurrency: {group: deploy}\n")?
                .steps[0])
        #expect(
            step.jobs == [
                Job(name: "A", commands: ["x", "y"], env: ["E": "v"], agents: ["os": "linux"], concurrency: ConcurrencyRule(group: "deploy"))
            ])
        #expect(step.matrix == nil && step.parallelism == nil)
    }

    /// Every prefix of a file using every key parses or is refused; none traps.
    @Test func truncatedLanguageFilesNeverTrap() {
        let yaml = """
            stages: [build, test]
            env: {A: b}
            steps:
              - key: build
                stage: build
                command: make {{matrix.os}}
                matrix: {os: [linux, macos], exclude: [{os: macos}], include: [{os: bsd, x: y}]}
                parallelism: 2
                concurrency: {group: "b/{{matrix.os}}", limit: 2, cancel_in_progress: true}
                soft_fail: [1, {exit_status: "*"}]
                priority: 5
              - key: test
                stage: test
                if: branch == "main"
                when: always
                command: test
            """
        let utf8 = Array(yaml.utf8)
        for length in 0...utf8.count {
            _ = try? PipelineParser(file: "ci.yml").parse(String(decoding: utf8[..<length], as: UTF8.self))
        }
        #expect(expectPipeline(yaml)?.steps.map { $0.jobs.count } == [4, 1])
    }
}
