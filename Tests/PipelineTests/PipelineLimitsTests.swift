@testable import GantryPipeline
import Testing

/// Each limit of `PipelineLimits`: a pipeline exactly at the limit parses, one past it is
/// refused with a message naming the limit, at the offending place.
@Suite("Pipeline limits", .timeLimit(.minutes(1)))
struct PipelineLimitsTests {
    @Test func fileSize() {
        let body = "steps:\n  - command: x\n#"
        let limit = PipelineLimits.maximumYAMLBytes
        let atLimit = body + String(repeating: "p", count: limit - body.utf8.count - 1) + "\n"
        #expect(atLimit.utf8.count == limit)
        expectPipeline(atLimit)
        expectPipelineError(atLimit + "\n", line: nil, containing: "the file is 1048577 bytes; the limit is 1 MiB")
    }

    @Test func steps() {
        func pipeline(_ count: Int) -> String { "steps:\n" + repeated("  - command: x", count, separator: "\n") + "\n" }
        #expect(expectPipeline(pipeline(500))?.steps.count == 500)
        expectPipelineError(pipeline(501), line: 2, column: 3, containing: "the pipeline has 501 steps; the limit is 500")
    }

    @Test func commands() {
        func step(_ count: Int) -> String { "steps:\n  - commands: [\(repeated("x", count))]\n" }
        #expect(expectPipeline(step(256))?.steps[0].commands.count == 256)
        expectPipelineError(step(257), line: 2, column: 15, containing: "the step has 257 commands; the limit is 256")
        func long(_ length: Int) -> String { "steps:\n  - commands: [a, \(String(repeating: "c", count: length))]\n" }
        expectPipeline(long(64 * 1024))
        expectPipelineError(long(64 * 1024 + 1), line: 2, column: 19, containing: "a command is 65537 bytes long; the limit is 64 KiB")
        expectPipelineError("steps:\n  - command: \"a\\0b\"\n", line: 2, column: 14, containing: "NUL")
    }

    @Test func keysAndNames() {
        expectPipeline("steps:\n  - key: \(String(repeating: "k", count: 100))\n    command: x\n")
        expectPipelineError(
            "steps:\n  - key: \(String(repeating: "k", count: 101))\n    command: x\n", line: 2, column: 10,
            containing: "step key is 101 characters long; the limit is 100")
        for key in [".", "..", ".hidden"] {
            expectPipelineError("steps:\n  - key: '\(key)'\n    command: x\n", line: 2, column: 10, containing: "may not start with `.`")
        }
        #expect(expectPipeline("steps:\n  - key: a.b..c\n    command: x\n")?.steps[0].key == "a.b..c")
        let name = String(repeating: "é", count: 128)  // 256 bytes
        #expect(expectPipeline("steps:\n  - name: \(name)\n    command: x\n")?.steps[0].name == name)
        expectPipelineError("steps:\n  - name: \(name)e\n    command: x\n", line: 2, column: 11, containing: "`name` is 257 bytes long; the limit is 256")
        expectPipelineError("steps:\n  - label: \"a\\nb\"\n    command: x\n", line: 2, column: 12, containing: "control character")
    }

    @Test func dependencies() {
        func pipeline(_ count: Int) -> String {
            var yaml = "steps:\n"
            for index in 0..<count { yaml += "  - {key: s\(index), command: x}\n" }
            yaml += "  - key: last\n    command: x\n    depends_on: [\((0..<count).map { "s\($0)" }.joined(separator: ", "))]\n"
            return yaml
        }
        #expect(expectPipeline(pipeline(100))?.steps.last?.dependsOn.count == 100)
        expectPipelineError(pipeline(101), line: 105, column: 17, containing: "the step depends on 101 steps; the limit is 100")
        expectPipelineError(
            "steps:\n  - {key: a, command: x}\n  - {key: b, command: x, depends_on: [a, a]}\n", line: 3, column: 38,
            containing: "`depends_on` names `a` twice")
    }

    @Test func retryRules() {
        func step(_ count: Int) -> String { "steps:\n  - command: x\n    retry: {automatic: [\(repeated("{exit_status: 1}", count))]}\n" }
        #expect(expectPipeline(step(16))?.steps[0].retry.count == 16)
        expectPipelineError(step(17), line: 3, column: 24, containing: "`retry.automatic` has 17 rules; the limit is 16")
    }

    @Test func environment() {
        func entries(_ count: Int) -> String { "steps:\n  - command: x\n    env: {\((0..<count).map { "V\($0): v" }.joined(separator: ", "))}\n" }
        #expect(expectPipeline(entries(256))?.steps[0].env.count == 256)
        expectPipelineError(entries(257), line: 3, column: 10, containing: "`env` has 257 entries; the limit is 256")
        // The top-level env has the same bounds.
        expectPipelineError(
            "env: {\((0..<257).map { "V\($0): v" }.joined(separator: ", "))}\nsteps:\n  - command: x\n", line: 1, column: 6,
            containing: "`env` has 257 entries")

        let name = String(repeating: "N", count: 256)
        expectPipeline("steps:\n  - command: x\n    env: {\(name): v}\n")
        expectPipelineError(
            "steps:\n  - command: x\n    env: {\(name)N: v}\n", line: 3, column: 11,
            containing: "environment variable name is 257 bytes long; the limit is 256")

        let value = String(repeating: "v", count: 32 * 1024)
        expectPipeline("steps:\n  - command: x\n    env: {A: \(value)}\n")
        expectPipelineError(
            "steps:\n  - command: x\n    env: {A: \(value)v}\n", line: 3, column: 11,
            containing: "`env.A` is 32769 bytes long; the limit is 32 KiB")

        expectPipelineError("steps:\n  - command: x\n    env: {'A=B': v}\n", line: 3, column: 11, containing: "contains `=` or NUL")
        expectPipelineError("steps:\n  - command: x\n    env: {'': v}\n", line: 3, column: 11, containing: "is empty or contains")
        expectPipelineError("steps:\n  - command: x\n    env: {A: \"\\0\"}\n", line: 3, column: 11, containing: "`env.A` contains a NUL")
    }

    @Test func agentSelectors() {
        func labels(_ count: Int) -> String { "steps:\n  - command: x\n    agents: {\((0..<count).map { "l\($0): v" }.joined(separator: ", "))}\n" }
        #expect(expectPipeline(labels(64))?.steps[0].agents.count == 64)
        expectPipelineError(labels(65), line: 3, column: 13, containing: "`agents` has 65 labels; an agent announces at most 64")
        let key = String(repeating: "k", count: 63)
        let value = String(repeating: "v", count: 255)
        expectPipeline("steps:\n  - command: x\n    agents: {\(key): \(value)}\n")
        expectPipelineError("steps:\n  - command: x\n    agents: {\(key)k: v}\n", line: 3, column: 14, containing: "is too long")
        expectPipelineError("steps:\n  - command: x\n    agents: {k: \(value)v}\n", line: 3, column: 14, containing: "is too long")
    }

    @Test func bytesPerStep() {
        // key + name (2) + 15 commands of 64 KiB (+1 each) + one of 65,518 (+1) = 1 MiB,
        // written with aliases so the file stays small.
        func step(lastCommand length: Int) -> String {
            let big = String(repeating: "c", count: 64 * 1024)
            return "steps:\n  - key: a\n    commands: [&c \(big), \(repeated("*c", 14)), \(String(repeating: "d", count: length))]\n"
        }
        #expect(expectPipeline(step(lastCommand: 65_518))?.steps[0].commands.count == 16)
        expectPipelineError(
            step(lastCommand: 65_519), line: 2, column: 5,
            containing: "step `a` carries 1048577 bytes of commands, environment (including the pipeline's `env`) and labels; the limit is 1 MiB")
    }

    @Test func totalBytesCountTheInheritedEnvironmentPerStep() {
        // 128 steps × (key 4 + name 4 + command 2 + E1 (2 + 32,768 + 2) + E2 (2 + b + 2))
        // = 128 × 65,536 = 8 MiB when b = 32,750; the file itself is about 70 KB.
        func pipeline(_ b: Int) -> String {
            var yaml = "env:\n  E1: \(String(repeating: "1", count: 32 * 1024))\n  E2: \(String(repeating: "2", count: b))\nsteps:\n"
            for index in 0..<128 { yaml += "  - {key: k\(String(index + 100).suffix(3)), command: x}\n" }
            return yaml
        }
        #expect(expectPipeline(pipeline(32_750))?.steps.count == 128)
        expectPipelineError(
            pipeline(32_751), line: 132, column: 5,
            containing: "the steps up to `k227` carry more than 8 MiB (each step counts the pipeline's `env` again)")
    }
}
