@testable import GantryPipeline
import Testing

/// `wait` and `stage:`: the dependencies the parser folds into `dependsOn`.
@Suite("Pipeline language: stages", .timeLimit(.minutes(1)))
struct PipelineStagesTests {
    func dependencies(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String: [String]] {
        let steps = expectPipeline(yaml, sourceLocation: sourceLocation)?.steps ?? []
        return Dictionary(uniqueKeysWithValues: steps.map { ($0.key, $0.dependsOn) })
    }

    @Test func waitMakesEveryLaterStepFollowTheGroupBeforeIt() {
        let deps = dependencies(
            """
            steps:
              - {key: a, command: x}
              - {key: b, command: x}
              - wait
              - {key: c, command: x, depends_on: [b]}
              - {key: d, command: x}
              - wait: ~
              - {key: e, command: x}
              - wait: null
              - {key: f, command: x}
              - wait: ""
              - {key: g, command: x}
              - {wait: }
              - {key: h, command: x}
            """)
        #expect(
            deps == [
                "a": [], "b": [],
                // Explicit dependencies first, then the implicit ones not already there.
                "c": ["b", "a"], "d": ["a", "b"],
                "e": ["c", "d"], "f": ["e"], "g": ["f"], "h": ["g"],
            ])
    }

    @Test func waitsAreNotSteps() throws {
        let definition = try #require(expectPipeline("steps:\n  - command: x\n  - wait\n  - command: y\n"))
        #expect(definition.steps.map(\.key) == ["step-1", "step-2"])
        #expect(definition.steps[1].dependsOn == ["step-1"])
        #expect(definition.steps[1].commands == ["y"])
    }

    @Test func implicitDependenciesDoNotCountAgainstTheExplicitLimit() {
        // 150 steps before a wait: the step after it depends on all of them.
        let yaml = "steps:\n" + (0..<150).map { "  - {key: s\($0), command: x}\n" }.joined() + "  - wait\n  - {key: last, command: x}\n"
        #expect(dependencies(yaml)["last"] == (0..<150).map { "s\($0)" })
    }

    @Test func waitPositions() {
        expectPipelineError(
            "steps:\n  - wait\n  - command: x\n", line: 2, column: 5, containing: "`wait` is the first entry of `steps`")
        expectPipelineError(
            "steps:\n  - command: x\n  - wait: ~\n", line: 3, column: 5, containing: "`wait` is the last entry of `steps`")
        expectPipelineError(
            "steps:\n  - command: x\n  - wait\n  - wait\n  - command: y\n", line: 4, column: 5, containing: "two `wait`s in a row")
        expectPipelineError(
            "steps:\n  - command: x\n  - {wait: ~, continue_on_failure: true}\n  - command: y\n", line: 3, column: 15,
            containing: "a `wait` takes no other keys, found `continue_on_failure`")
        expectPipelineError(
            "steps:\n  - command: x\n  - wait: please\n  - command: y\n", line: 3, column: 11, containing: "`wait` takes no value")
    }

    @Test func stagesFollowTheStagesList() {
        let deps = dependencies(
            """
            stages: [build, test, package, deploy]
            steps:
              - {key: ship, stage: deploy, command: x}
              - {key: unit, stage: test, command: x}
              - {key: compile, stage: build, command: x}
              - {key: lint, stage: test, command: x, depends_on: compile}
            """)
        // `package` has no steps: `deploy` follows `test`, the nearest earlier stage with steps.
        #expect(deps == ["ship": ["unit", "lint"], "unit": ["compile"], "compile": [], "lint": ["compile"]])
    }

    @Test func stagesWithoutAListFollowFirstAppearance() {
        let deps = dependencies(
            """
            steps:
              - {key: t1, stage: test, command: x}
              - {key: b1, stage: build, command: x}
              - {key: t2, stage: test, command: x}
              - {key: d1, stage: deploy, command: x}
            """)
        #expect(deps == ["t1": [], "t2": [], "b1": ["t1", "t2"], "d1": ["b1"]])
    }

    @Test func stageErrors() {
        expectPipelineError(
            "steps:\n  - {key: a, stage: build, command: x}\n  - {key: b, command: x}\n", line: 3, column: 5,
            containing: "step `b` has no `stage:`: once the pipeline uses stages")
        expectPipelineError(
            "stages: [build]\nsteps:\n  - {key: a, command: x}\n", line: 3, column: 5, containing: "step `a` has no `stage:`")
        expectPipelineError(
            "stages: [build, test]\nsteps:\n  - {key: a, stage: deploy, command: x}\n", line: 3, column: 21,
            containing: "unknown stage `deploy`: `stages` lists build, test")
        expectPipelineError(
            "steps:\n  - {key: a, stage: build, command: x}\n  - wait\n  - {key: b, stage: test, command: x}\n", line: 3, column: 5,
            containing: "`wait` cannot be mixed with stages")
        expectPipelineError(
            "stages: [a, a]\nsteps:\n  - {stage: a, command: x}\n", line: 1, column: 13, containing: "`stages` names `a` twice")
        expectPipelineError("stages: []\nsteps:\n  - command: x\n", line: 1, column: 9, containing: "`stages` must be a non-empty list")
        expectPipelineError(
            "steps:\n  - {stage: 'build it', command: x}\n", line: 2, column: 13,
            containing: "stage name `build it` must be 1-100 ASCII letters, digits")
    }

    @Test func cyclesThroughImplicitDependenciesAreFound() {
        expectPipelineError(
            "steps:\n  - {key: a, command: x, depends_on: b}\n  - wait\n  - {key: b, command: x}\n", line: 2, column: 38,
            containing: "dependency cycle: a → b → a")
    }
}
