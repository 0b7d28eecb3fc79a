@testable import GantryPipeline
import Testing

/// The limits of the pipeline language: each at the limit parses, one past it is refused
/// with the computed count, the limit and the place.
@Suite("Pipeline language: limits", .timeLimit(.minutes(1)))
struct PipelineLanguageLimitsTests {
    /// `[p0, p1, …]`: `count` distinct values.
    func values(_ prefix: String, _ count: Int) -> String { "[" + (0..<count).map { "\(prefix)\($0)" }.joined(separator: ", ") + "]" }

    func matrixStep(_ matrix: String, extra: String = "") -> String {
        "steps:\n  - key: t\n    command: x\n\(extra)    matrix: \(matrix)\n"
    }

    @Test func jobsPerStep() {
        #expect(expectPipeline(matrixStep("{a: \(values("a", 16)), b: \(values("b", 16))}"))?.steps[0].jobs.count == 256)
        expectPipelineError(
            matrixStep("{a: \(values("a", 16)), b: \(values("b", 17))}"), line: 4, column: 13,
            containing: "the matrix has 272 combinations (16 × 17); the limit is 256 jobs per step")
        #expect(
            expectPipeline(matrixStep("{a: \(values("a", 64)), b: [x, y]}", extra: "    parallelism: 2\n"))?.steps[0].jobs.count == 256)
        expectPipelineError(
            matrixStep("{a: \(values("a", 10)), b: \(values("b", 10))}", extra: "    parallelism: 3\n"), line: 5, column: 13,
            containing: "step `t` expands into 300 jobs (100 matrix combinations × 3 parallel copies); the limit is 256 jobs per step")
        // Counted after `exclude`: 32 × 32 with 24 rows excluded is 256.
        func excluding(_ rows: Int) -> String {
            "{a: \(values("a", 32)), b: \(values("b", 32)), exclude: [\((0..<rows).map { "{a: a\($0)}" }.joined(separator: ", "))]}"
        }
        #expect(expectPipeline(matrixStep(excluding(24)))?.steps[0].jobs.count == 256)
        expectPipelineError(
            matrixStep(excluding(23)), line: 4, column: 13,
            containing: "step `t` expands into 288 jobs (288 matrix combinations); the limit is 256 jobs per step")
        // Before `exclude`, at most 1,024 combinations are listed at all.
        expectPipelineError(
            matrixStep("{a: \(values("a", 40)), b: \(values("b", 30)), exclude: [{a: a0}]}"), line: 4, column: 13,
            containing: "the matrix has 1200 combinations (40 × 30) before `exclude`; the limit is 1024 before `exclude`")
    }

    @Test func productsThatOverflowAreRefusedWithoutListingThem() {
        let dimensions = (0..<10).map { "d\($0): \(values("v", 100))" }.joined(separator: ", ")
        expectPipelineError(
            matrixStep("{\(dimensions)}"), line: 4, column: 13,
            containing: "the matrix has more than 9223372036854775807 combinations (100 × 100 × 100 × 100 × 100 × 100 × 100 × 100 × 100 × 100)")
        expectPipelineError(
            matrixStep("{\(dimensions), exclude: [{d0: v0}]}"), line: 4, column: 13, containing: "before `exclude`")
    }

    @Test func jobsPerPipeline() {
        func pipeline(last: Int) -> String {
            "steps:\n" + repeated("  - {command: x, parallelism: 256}", 3, separator: "\n") + "\n  - {command: x, parallelism: \(last)}\n"
        }
        #expect(expectPipeline(pipeline(last: 232))?.steps.map(\.jobs.count) == [256, 256, 256, 232])
        expectPipelineError(
            pipeline(last: 233), line: 5, column: 31,
            containing: "the steps up to `step-4` expand into 1001 jobs; the limit is 1000 jobs per pipeline")
        // Plain steps count one each.
        let plain = "steps:\n" + repeated("  - {command: x, parallelism: 250}", 4, separator: "\n") + "\n  - command: y\n"
        expectPipelineError(plain, line: 6, column: 5, containing: "the steps up to `step-5` expand into 1001 jobs; the limit is 1000")
    }

    @Test func dimensionsAndValues() {
        func dimensions(_ count: Int) -> String { "{" + (0..<count).map { "d\($0): [v]" }.joined(separator: ", ") + "}" }
        #expect(expectPipeline(matrixStep(dimensions(10)))?.steps[0].jobs.first?.matrix.count == 10)
        expectPipelineError(matrixStep(dimensions(11)), line: 4, column: 13, containing: "the matrix has 11 dimensions; the limit is 10")

        #expect(expectPipeline(matrixStep("{a: \(values("v", 100))}"))?.steps[0].jobs.count == 100)
        expectPipelineError(
            matrixStep("{a: \(values("v", 101))}"), line: 4, column: 17, containing: "`matrix.a` has 101 values; the limit is 100")

        let value = String(repeating: "v", count: 256)
        // A job name lists the values, so a value this long needs a name that refers to it.
        #expect(expectPipeline(matrixStep("{a: [\(value)]}", extra: "    name: \"{{matrix.a}}\"\n"))?.steps[0].jobs.first?.matrix == ["a": value])
        expectPipelineError(
            matrixStep("{a: [\(value)v]}"), line: 4, column: 18, containing: "a `matrix.a` value is 257 bytes long; the limit is 256")
        expectPipelineError(matrixStep("{a: [\"x\\ty\"]}"), line: 4, column: 18, containing: "contains a control character")

        let name = String(repeating: "n", count: 64)
        expectPipeline(matrixStep("{\(name): [v]}"))
        expectPipelineError(matrixStep("{\(name)n: [v]}"), line: 4, column: 14, containing: "must be 1-64 ASCII letters")

        func entries(_ key: String, _ count: Int) -> String {
            "{a: \(values("a", 2)), \(key): [\(repeated("{a: a0}", count))]}"
        }
        expectPipeline(matrixStep(entries("include", 256)))
        expectPipelineError(
            matrixStep(entries("include", 257)), line: 4, column: 36, containing: "`matrix.include` has 257 entries; the limit is 256")
        expectPipelineError(
            matrixStep(entries("exclude", 257)), line: 4, column: 36, containing: "`matrix.exclude` has 257 entries; the limit is 256")
        let wide = "{" + (0..<11).map { "k\($0): v" }.joined(separator: ", ") + "}"
        expectPipelineError(
            matrixStep("{include: [\(wide)]}"), line: 4, column: 24, containing: "a `matrix.include` entry has 11 values; the limit is 10")
    }

    @Test func interpolatedStringsAreCheckedAgain() {
        let command = String(repeating: "c", count: 65_524) + "{{matrix.v}}"  // 64 KiB as written
        expectPipeline(matrixStep("{v: [short]}").replacingOccurrences(of: "command: x", with: "command: \(command)"))
        expectPipelineError(
            matrixStep("{v: [short, \(String(repeating: "v", count: 100))]}").replacingOccurrences(of: "command: x", with: "command: \(command)"),
            line: 3, column: 14, containing: "a command is 65624 bytes long; the limit is 64 KiB")

        let value = String(repeating: "e", count: 32_756) + "{{matrix.v}}"  // 32 KiB as written
        expectPipelineError(
            matrixStep("{v: [\(String(repeating: "v", count: 13))]}", extra: "    env: {E: \"\(value)\"}\n"), line: 4, column: 11,
            containing: "`env.E` is 32769 bytes long; the limit is 32 KiB")

        expectPipelineError(
            matrixStep("{v: [\(String(repeating: "v", count: 256))]}", extra: "    name: \"{{matrix.v}}\"\n    agents: {os: \"{{matrix.v}}\"}\n"), line: 5, column: 14,
            containing: "the label `agents.os` is 256 bytes long; agent label values have at most 255 bytes")

        // The name `<key> (<values>)` is a name like any other.
        let key = String(repeating: "k", count: 100)
        expectPipelineError(
            "steps:\n  - key: \(key)\n    command: x\n    matrix: {v: [\(String(repeating: "v", count: 200))]}\n", line: 4, column: 13,
            containing: "is 303 bytes long; the limit is 256")
    }

    @Test func bytesPerJobIncludeTheParallelEnvironment() {
        // As `PipelineLimitsTests.bytesPerStep`, plus per job: the name `a 1/2` (4 more
        // bytes), GANTRY_PARALLEL_JOB=0 (22) and GANTRY_PARALLEL_JOB_COUNT=2 (28).
        func step(lastCommand length: Int) -> String {
            let big = String(repeating: "c", count: 64 * 1024)
            return "steps:\n  - key: a\n    parallelism: 2\n    commands: [&c \(big), \(repeated("*c", 14)), \(String(repeating: "d", count: length))]\n"
        }
        #expect(expectPipeline(step(lastCommand: 65_464))?.steps[0].jobs.count == 2)
        expectPipelineError(
            step(lastCommand: 65_465), line: 2, column: 5,
            containing: "job `a 1/2` of step `a` carries 1048577 bytes of commands, environment (including the pipeline's `env`) and labels; the limit is 1 MiB")
    }

    @Test func totalBytesCountEveryJob() {
        func pipeline(_ copies: Int) -> String {
            "env: {E1: \(String(repeating: "1", count: 32 * 1024))}\nsteps:\n  - command: x\n    parallelism: \(copies)\n"
        }
        #expect(expectPipeline(pipeline(250))?.steps[0].jobs.count == 250)
        expectPipelineError(
            pipeline(256), line: 4, column: 18,
            containing: "the steps up to `step-1` carry more than 8 MiB (each step counts the pipeline's `env` again), counting every job")
    }
}

import Foundation
