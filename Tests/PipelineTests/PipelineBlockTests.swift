@testable import GantryPipeline
import Testing

/// `block:` steps: approval gates, parsed into `Step.block` with one job and no command.
@Suite("Pipeline language: block steps", .timeLimit(.minutes(1)))
struct PipelineBlockTests {
    static let example = """
        steps:
          - key: build
            command: make
          - block: "Deploy to production?"
            key: approve-production
            depends_on: build
            if: 'branch == "main"'
            allowed: {roles: [deployer], identities: [alice, bob]}
            fields:
              - {key: release-notes, text: "Release notes", required: false, default: "none"}
              - {key: channel, select: "Channel", options: [stable, beta], required: true}
          - key: deploy
            depends_on: approve-production
            command: ./deploy "$(gantry meta-data get channel)"
        """

    @Test func theDocumentedExample() throws {
        let definition = try #require(expectPipeline(Self.example))
        #expect(definition.steps.map(\.key) == ["build", "approve-production", "deploy"])
        let block = definition.steps[1]
        #expect(
            block.block
                == BlockStep(
                    prompt: "Deploy to production?",
                    fields: [
                        BlockField(key: "release-notes", label: "Release notes", required: false, options: [], defaultValue: "none"),
                        BlockField(key: "channel", label: "Channel", required: true, options: ["stable", "beta"], defaultValue: nil),
                    ],
                    roles: ["deployer"], identities: ["alice", "bob"]))
        #expect(block.name == "Deploy to production?")
        #expect(block.commands.isEmpty)
        #expect(block.retry.isEmpty)
        #expect(block.env.isEmpty && block.agents.isEmpty)
        #expect(block.dependsOn == ["build"])
        #expect(block.condition?.text == "branch == \"main\"")
        #expect(block.jobs == [PipelineDefinition.Job(name: "Deploy to production?", commands: [], env: [:], agents: [:])])
        #expect(definition.steps[2].dependsOn == ["approve-production"])
        #expect(definition.steps[0].block == nil && definition.steps[2].block == nil)
    }

    @Test func stepsDependOnABlockAndABlockOnAStep() throws {
        let definition = try #require(
            expectPipeline(
                """
                steps:
                  - {key: a, command: x}
                  - {block: "One?", key: first, depends_on: a}
                  - {block: "Two?", key: second, depends_on: [first]}
                  - {key: b, command: y, depends_on: [first, second]}
                """))
        #expect(definition.steps.map(\.dependsOn) == [[], ["a"], ["first"], ["first", "second"]])
        #expect(definition.steps.map { $0.jobs.count } == [1, 1, 1, 1])
    }

    @Test func aBlockAfterAWaitAndDefaultKeys() throws {
        let definition = try #require(
            expectPipeline(
                """
                steps:
                  - command: x
                  - wait
                  - block: Ship it?
                  - wait
                  - command: y
                  - block: Again?
                    name: second gate
                """))
        // `block-N` is numbered like `step-N`: by position among the steps, `wait`s not counted.
        #expect(definition.steps.map(\.key) == ["step-1", "block-2", "step-3", "block-4"])
        #expect(definition.steps.map(\.dependsOn) == [[], ["step-1"], ["block-2"], ["block-2"]])
        #expect(definition.steps[1].name == "Ship it?")
        #expect(definition.steps[1].block == BlockStep(prompt: "Ship it?"))
        #expect(definition.steps[3].name == "second gate")
        #expect(definition.steps[3].jobs.map(\.name) == ["second gate"])
        #expect(definition.steps[3].condition == nil)
        #expect(definition.steps[3].when == .onSuccess)
    }

    @Test func aBlockInAStage() throws {
        let definition = try #require(
            expectPipeline(
                """
                stages: [build, gate, deploy]
                steps:
                  - {key: a, command: x, stage: build}
                  - {block: Deploy?, key: gate, stage: gate}
                  - {key: d, command: y, stage: deploy}
                """))
        #expect(definition.steps.map(\.dependsOn) == [[], ["a"], ["gate"]])
    }

    @Test func rolesAndIdentities() throws {
        let definition = try #require(
            expectPipeline(
                """
                steps:
                  - block: Go?
                    allowed:
                      roles: [viewer, developer, admin, "deployer:production+eu-west.1", deployer]
                  - block: Go again?
                    allowed: {identities: [alice, bob.smith, ci_bot-2]}
                  - block: And text?
                    fields:
                      - key: notes/v1:x
                        text: Notes
                        default: |
                          several
                          lines
                  - {key: after, command: x}
                """))
        #expect(definition.steps[0].block?.roles == ["viewer", "developer", "admin", "deployer:production+eu-west.1", "deployer"])
        #expect(definition.steps[0].block?.identities == [])
        #expect(definition.steps[1].block?.identities == ["alice", "bob.smith", "ci_bot-2"])
        #expect(definition.steps[2].block?.fields == [BlockField(key: "notes/v1:x", label: "Notes", defaultValue: "several\nlines\n")])
    }

    // MARK: - Errors

    @Test func aBlockRunsNoCommand() {
        expectPipelineError(
            "steps:\n  - block: Go?\n    command: make\n", line: 3, column: 5,
            containing: "`command` is not allowed on a block step: a block runs no command")
        expectPipelineError(
            "steps:\n  - {block: Go?, agents: {os: linux}}\n", line: 2, column: 18,
            containing: "`agents` is not allowed on a block step: a block runs no command")
        for key in ["matrix: {os: [a]}", "parallelism: 2", "env: {A: b}", "retry: {automatic: []}", "timeout: 5m",
            "secrets: [A]", "environment: production", "concurrency: {group: g}", "priority: 1", "soft_fail: true",
            "when: always", "commands: [x]", "cancel_grace: 5s"]
        {
            expectPipelineError("steps:\n  - block: Go?\n    \(key)\n", line: 3, column: 5, containing: "a block runs no command")
        }
        expectPipelineError(
            "steps:\n  - block: Go?\n    hint: x\n", line: 3, column: 5,
            containing: "unknown block step key `hint`: expected one of allowed, block, depends_on, fields, if, key, label, name, stage")
        expectPipelineError(
            "steps:\n  - command: x\n    fields: []\n", line: 3, column: 5, containing: "`fields` belongs to a block step")
    }

    @Test func prompts() {
        expectPipelineError(
            "steps:\n  - block: \"Go\\nnow?\"\n", line: 2, column: 12,
            containing: "`block` contains a control character (such as a newline): the prompt is shown on one line")
        expectPipelineError("steps:\n  - block: \"  \"\n    key: a\n", line: 2, column: 5, containing: "`block` is empty")
        expectPipelineError("steps:\n  - block: ~\n", line: 2, column: 5, containing: "`block` is empty")
        expectPipelineError("steps:\n  - block:\n    key: a\n", line: 2, column: 5, containing: "`block` is empty")
        expectPipelineError("steps:\n  - block: [a]\n", line: 2, column: 12, containing: "`block` must be the question")
        expectPipelineError(
            "steps:\n  - block: \(String(repeating: "x", count: 257))\n", line: 2, column: 12,
            containing: "`block` is 257 bytes long; the limit is 256")
    }

    @Test func fieldErrors() {
        func field(_ text: String) -> String { "steps:\n  - block: Go?\n    fields:\n      - {key: z, text: Z}\n      - \(text)\n" }
        expectPipelineError(
            "steps:\n  - block: Go?\n    fields:\n      - {key: \"bad key\", text: Notes}\n", line: 4, column: 15,
            containing: "a field's `key` is a meta-data key: 1-255 bytes of ASCII letters, digits and `_ . : / -`, found `bad key`")
        expectPipelineError(
            "steps:\n  - block: Go?\n    fields:\n      - {key: a, text: A}\n      - {key: a, text: B}\n", line: 5, column: 15,
            containing: "the block has two fields with the key `a`")
        expectPipelineError(
            field("{key: a, text: A, select: B, options: [x]}"), line: 5, column: 27,
            containing: "a field has both `text` and `select`")
        expectPipelineError(field("{key: a, select: Pick}"), line: 5, column: 18, containing: "`select` field `a` needs `options`")
        expectPipelineError(
            field("{key: a, select: Pick, options: [x, y], default: z}"), line: 5, column: 58,
            containing: "the `default` of `select` field `a` is `z`, which is not one of its options (x, y)")
        expectPipelineError(
            field("{key: a, text: Notes, options: [x]}"), line: 5, column: 31, containing: "`options` is only for `select` fields")
        expectPipelineError(field("{key: a, text: A, hint: B}"), line: 5, column: 27, containing: "unknown field key `hint`")
        expectPipelineError(field("{text: A}"), line: 5, column: 9, containing: "a field needs a `key`")
        expectPipelineError(field("{key: a}"), line: 5, column: 9, containing: "field `a` needs `text: LABEL`")
        expectPipelineError(field("{key: a, text: A, required: yes}"), line: 5, column: 37, containing: "`required` must be `true` or `false`")
        expectPipelineError(field("{key: a, select: P, options: [x, x]}"), line: 5, column: 42, containing: "`options` lists `x` twice")
        expectPipelineError(field("{key: a, select: P, options: []}"), line: 5, column: 38, containing: "a `select` field has 1 to 50")
        expectPipelineError(field("x"), line: 5, column: 9, containing: "each entry of `fields` must be a mapping")
        expectPipelineError(
            field("{key: a, text: \"two\\nlines\"}"), line: 5, column: 24, containing: "`text` contains a control character")
        let fiftyOne = (0..<51).map { "o\($0)" }.joined(separator: ", ")
        expectPipelineError(field("{key: a, select: P, options: [\(fiftyOne)]}"), line: 5, column: 38, containing: "`options` lists 51 values")
    }

    @Test func tooManyFields() {
        let fields = (0..<21).map { "{key: f\($0), text: F}" }.joined(separator: ", ")
        expectPipelineError(
            "steps:\n  - block: Go?\n    fields: [\(fields)]\n", line: 3, column: 13,
            containing: "the block has 21 fields; the limit is 20")
        let twenty = (0..<20).map { "{key: f\($0), text: F}" }.joined(separator: ", ")
        #expect(expectPipeline("steps:\n  - block: Go?\n    fields: [\(twenty)]\n")?.steps[0].block?.fields.count == 20)
    }

    @Test func allowedErrors() {
        expectPipelineError(
            "steps:\n  - block: Go?\n    allowed: {roles: [deployer, root]}\n", line: 3, column: 33,
            containing: "unknown role `root` in `allowed.roles`: expected viewer, developer, deployer, admin, or deployer:ENV+ENV")
        expectPipelineError(
            "steps:\n  - block: Go?\n    allowed: {roles: [\"deployer:production+\"]}\n", line: 3, column: 23,
            containing: "unknown role `deployer:production+`")
        expectPipelineError(
            "steps:\n  - block: Go?\n    allowed: {roles: [\"admin:production\"]}\n", line: 3, column: 23,
            containing: "unknown role `admin:production`")
        expectPipelineError(
            "steps:\n  - block: Go?\n    allowed: {identities: [alice, \"bob smith\"]}\n", line: 3, column: 35,
            containing: "`bob smith` in `allowed.identities` is not an identity name: 1-64 bytes of ASCII letters, digits")
        expectPipelineError(
            "steps:\n  - block: Go?\n    allowed: {identities: [\(String(repeating: "a", count: 65))]}\n", line: 3, column: 28,
            containing: "is not an identity name")
        let identities = (0..<101).map { "u\($0)" }.joined(separator: ", ")
        expectPipelineError(
            "steps:\n  - block: Go?\n    allowed: {identities: [\(identities)]}\n", line: 3, column: 27,
            containing: "`allowed.identities` lists 101 identities; it takes 1 to 100")
        expectPipelineError(
            "steps:\n  - block: Go?\n    allowed: {teams: [ops]}\n", line: 3, column: 15,
            containing: "unknown `allowed` key `teams`: expected roles or identities")
        expectPipelineError("steps:\n  - block: Go?\n    allowed: {}\n", line: 3, column: 14, containing: "`allowed` names no one")
        expectPipelineError(
            "steps:\n  - block: Go?\n    allowed: {roles: [admin, admin]}\n", line: 3, column: 30,
            containing: "`allowed.roles` names `admin` twice")
        expectPipelineError(
            "steps:\n  - block: Go?\n    allowed: deployer\n", line: 3, column: 14, containing: "`allowed` must be a mapping")
    }

    @Test func blockKeysAreStepKeys() {
        expectPipelineError(
            "steps:\n  - {key: a, command: x}\n  - {block: Go?, key: a}\n", line: 3, column: 5, containing: "duplicate step key `a`")
        expectPipelineError(
            "steps:\n  - {block: Go?, depends_on: nope}\n", line: 2, column: 30,
            containing: "step `block-1` depends on `nope`, which is not a step key")
        expectPipelineError(
            "steps:\n  - {block: Go?, key: \".x\"}\n", line: 2, column: 23, containing: "step key `.x` may contain only")
        expectPipelineError(
            "steps:\n  - {block: Go?, if: 'branch =='}\n", line: 2, containing: "`if`")
    }
}
