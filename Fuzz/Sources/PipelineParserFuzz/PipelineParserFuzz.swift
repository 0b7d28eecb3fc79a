import FuzzSupport
import GantryPipeline

/// Bytes (as UTF-8, invalid sequences replaced) → `PipelineParser.parse`, the function the
/// HTTP API runs on every submitted pipeline: the size limit, `YAMLComplexityCheck`, Yams'
/// composer and the walk over its node tree.
///
/// `scripts/fuzz` runs this target with `-timeout=2`: an input that takes longer than
/// 2 s (a YAML alias bomb, a quadratic path) counts as a finding, like a crash.
///
/// Properties checked on every pipeline the parser accepts (a violation traps): the
/// `PipelineLimits` that the store and the lease encoder rely on hold, durations fit the
/// lease's `UInt32` fields, step keys are valid and unique, dependencies name other steps.
@main
enum PipelineParserFuzz {
    static func main() {
        Fuzzer.main(seeds: seeds, testOneInput: { data, count in
            PipelineParserFuzz.run(Fuzzer.bytes(data, count))
            return 0
        })
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        let text = String(decoding: input, as: UTF8.self)
        let pipeline: PipelineDefinition
        do {
            pipeline = try PipelineParser(file: "fuzz.yml").parse(text)
        } catch {
            return
        }
        check(pipeline)
    }

    static func check(_ pipeline: PipelineDefinition) {
        func require(_ condition: Bool, _ what: @autoclosure () -> String) {
            if !condition { Fuzzer.fail("accepted pipeline: \(what())") }
        }
        require(
            (1...PipelineLimits.maximumSteps).contains(pipeline.steps.count), "\(pipeline.steps.count) steps")
        require(pipeline.env.count <= PipelineLimits.maximumEnvironmentEntries, "\(pipeline.env.count) env entries")
        let keys = Set(pipeline.steps.map(\.key))
        require(keys.count == pipeline.steps.count, "duplicate step keys")
        for step in pipeline.steps {
            require(PipelineParser.isValidKey(step.key), "invalid key \(step.key.debugDescription)")
            require(step.key.utf8.count <= PipelineLimits.maximumKeyLength, "key of \(step.key.utf8.count) bytes")
            require(step.name.utf8.count <= PipelineLimits.maximumNameBytes || step.name == step.key, "long name")
            if let block = step.block {
                // A block runs nothing: no commands, one job, bounded fields.
                require(step.commands.isEmpty && step.jobs.count == 1, "block \(step.key) has commands or several jobs")
                require(block.fields.count <= PipelineLimits.maximumBlockFields, "block \(step.key) has \(block.fields.count) fields")
                require(Set(block.fields.map(\.key)).count == block.fields.count, "block \(step.key) repeats a field key")
            } else {
                require(
                    (1...PipelineLimits.maximumCommands).contains(step.commands.count),
                    "step \(step.key) has \(step.commands.count) commands")
            }
            for command in step.commands {
                require(command.utf8.count <= PipelineLimits.maximumCommandBytes, "a command of \(command.utf8.count) bytes")
                require(!command.utf8.contains(0), "a command with NUL")
            }
            if let timeout = step.timeoutSeconds {
                require((1...PipelineLimits.maximumTimeoutSeconds).contains(timeout), "timeout \(timeout)")
                require(UInt32(exactly: timeout) != nil, "timeout \(timeout) does not fit the lease")
            }
            require(
                (0...PipelineLimits.maximumCancelGraceSeconds).contains(step.cancelGraceSeconds),
                "cancel_grace \(step.cancelGraceSeconds)")
            require(UInt32(exactly: step.cancelGraceSeconds) != nil, "cancel_grace does not fit the lease")
            // `wait` and stages add implicit dependencies: bounded by the steps, not by the
            // 100 a file may list.
            require(step.dependsOn.count < PipelineLimits.maximumSteps, "\(step.dependsOn.count) dependencies")
            require(Set(step.dependsOn).count == step.dependsOn.count, "step \(step.key) lists a dependency twice")
            require(
                (1...PipelineLimits.maximumJobsPerStep).contains(step.jobs.count), "step \(step.key) has \(step.jobs.count) jobs")
            for job in step.jobs {
                require(job.commands.allSatisfy { $0.utf8.count <= PipelineLimits.maximumCommandBytes }, "an expanded command too long")
                require(job.name.utf8.count <= PipelineLimits.maximumNameBytes, "an expanded name of \(job.name.utf8.count) bytes")
                if let rule = job.concurrency {
                    require((1...PipelineLimits.maximumConcurrencyLimit).contains(rule.limit), "concurrency limit \(rule.limit)")
                }
            }
            require(!step.dependsOn.contains(step.key), "step \(step.key) depends on itself")
            for dependency in step.dependsOn {
                require(keys.contains(dependency), "step \(step.key) depends on unknown \(dependency.debugDescription)")
            }
            require(step.env.count <= PipelineLimits.maximumEnvironmentEntries, "\(step.env.count) env entries")
            for (name, value) in step.env.merging(pipeline.env, uniquingKeysWith: { step, _ in step }) {
                require(!name.isEmpty && !name.utf8.contains(UInt8(ascii: "=")) && !name.utf8.contains(0), "env name \(name.debugDescription)")
                require(value.utf8.count <= PipelineLimits.maximumEnvironmentValueBytes, "env value of \(value.utf8.count) bytes")
                require(!value.utf8.contains(0), "env value with NUL")
            }
            require(step.agents.count <= PipelineLimits.maximumAgentLabels, "\(step.agents.count) agent labels")
            require(step.retry.count <= PipelineLimits.maximumRetryRules, "\(step.retry.count) retry rules")
        }
        require(pipeline.steps.map(\.jobs.count).reduce(0, +) <= PipelineLimits.maximumJobs, "too many jobs")
        // The per-step and total stored-bytes limits are checked by the parser with
        // `Step.storedBytes(inheriting:)`, which is internal to GantryPipeline.
    }

    /// Synthetic pipelines at the edges of the format; `scripts/fuzz --write-seeds` adds
    /// the real ones (examples/*.yml and the YAML blocks of docs/pipeline.md).
    static func seeds() throws -> [Seed] {
        let pipelines: [(String, String)] = [
            ("minimal", "steps:\n  - command: make\n"),
            ("all-keys", """
                env: {CI: "1"}
                steps:
                  - key: build
                    label: Build
                    commands: [swift build, swift test]
                    env: {SWIFT_DETERMINISTIC_HASHING: "1"}
                    agents: {os: linux, arch: x86_64}
                    timeout: 1h30m
                    cancel_grace: 30s
                    retry:
                      automatic:
                        - {reason: agent_lost, limit: 2}
                        - {exit_status: 75, limit: 1}
                        - {exit_status: "*", limit: 0}
                  - key: deploy
                    name: Deploy
                    command: scripts/deploy
                    depends_on: [build]
                    retry: {automatic: false}
                    timeout: 604800

                """),
            ("anchors", """
                x-common: &common
                  agents: {queue: default}
                  timeout: 10m
                steps:
                  - <<: *common
                    command: a
                  - key: b
                    command: &cmd [echo b]
                  - key: c
                    commands: *cmd

                """),
            ("alias-bomb-key", """
                a: &a [x, x, x, x]
                b: &b [*a, *a, *a, *a]
                c: &c [*b, *b, *b, *b]
                d: &d [*c, *c, *c, *c]
                ? [*d, *d, *d, *d]
                : boom
                steps: [{command: x}]

                """),
            ("cycle", "steps:\n  - {key: a, command: x, depends_on: b}\n  - {key: b, command: y, depends_on: a}\n"),
            ("durations", "steps:\n  - {command: x, timeout: 9999999999999999h, cancel_grace: 5000000000}\n"),
            ("flow", "{steps: [{key: k, command: [a, b], env: {A: '1'}}]}\n"),
            ("tags", "--- !!map\nsteps: !!seq\n  - !!map {command: !!str 1}\n...\n"),
        ]
        return pipelines.map { Seed($0.0 + ".yml", Array($0.1.utf8)) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    PipelineParserFuzz.run(Fuzzer.bytes(data, count))
    return 0
}
