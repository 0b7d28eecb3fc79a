import Foundation
@testable import GantryCoordinator
import GantryProtocol
import Testing

/// Environments' protection rules: parsed from the operator's file, checked at submission
/// with the rule named, and one-at-a-time deploys as a concurrency group.
@Suite("Environment rules")
struct EnvironmentRulesTests {
    static let file = """
        environments:
          production:
            branches: [main, "release/*"]
            required_approval: true
          staging: {}
          preview:
            one_at_a_time: false
        """

    static func definition(_ yaml: String) throws -> PipelineDefinition {
        try PipelineParser(file: "p.yml").parse(yaml)
    }

    @Test func theFileParsesWithItsDefaults() throws {
        let rules = try EnvironmentRules.parse(Self.file, file: "env.yml")
        #expect(rules.rules["production"] == .init(branches: ["main", "release/*"], requiredApproval: true, oneAtATime: true))
        #expect(rules.rules["staging"] == .init())
        #expect(rules.rules["preview"]?.oneAtATime == false)
        #expect(rules.concurrency(for: "production") == ConcurrencyRule(group: "environment:production", limit: 1))
        #expect(rules.concurrency(for: "preview") == nil && rules.concurrency(for: "unknown") == nil)
    }

    @Test func aBadFileIsRefusedWithItsPlace() {
        for (text, line, words) in [
            ("environments:\n  production:\n    branch: [main]\n", 3, "unknown rule `branch`"),
            ("environments:\n  production:\n    required_approval: yes\n", 3, "true or false"),
            ("environments:\n  prod uction: {}\n", 2, "environment name"),
            ("environments:\n  production:\n    branches: []\n", 3, "list of 1-"),
            ("envs: {}\n", 1, "expected a mapping `environments:`"),
        ] {
            do {
                _ = try EnvironmentRules.parse(text, file: "env.yml")
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.line == line && error.message.contains(words), "\(error)")
            }
        }
    }

    @Test func branchPatterns() {
        #expect(EnvironmentRules.matches("main", pattern: "main") && !EnvironmentRules.matches("main2", pattern: "main"))
        #expect(EnvironmentRules.matches("release/1.4", pattern: "release/*"))
        #expect(!EnvironmentRules.matches("hotfix/release/1.4", pattern: "release/*"))
        #expect(EnvironmentRules.matches("feature/a/b", pattern: "*") && EnvironmentRules.matches("a-x-b", pattern: "a-*-b"))
        #expect(!EnvironmentRules.matches("a-b", pattern: "a-*-b"))
    }

    @Test func aDeployThatBreaksARuleIsRefusedNamingIt() throws {
        let rules = try EnvironmentRules.parse(Self.file, file: "env.yml")
        let direct = try Self.definition("steps:\n  - {key: deploy, command: x, environment: production}\n")
        #expect(throws: DeployRefusal.self) { try rules.check(direct, branch: "main") }
        do {
            try rules.check(direct, branch: "feature/x")
            Issue.record("a feature branch deployed")
        } catch {
            #expect(error.kind == .placement && error.description.contains("rule `branches`"))
            #expect(error.description.contains("accepts only main, release/*"))
        }
        do {
            try rules.check(direct, branch: "release/1.4")
            Issue.record("a deploy without approval was accepted")
        } catch {
            #expect(error.description.contains("rule `required_approval`"))
        }
        let gated = try Self.definition(
            """
            steps:
              - {key: build, command: make}
              - block: Ship?
                key: approve
                depends_on: build
              - {key: smoke, command: x, depends_on: approve}
              - {key: deploy, command: x, environment: production, depends_on: smoke}
              - {key: stage, command: x, environment: staging}
            """)
        try rules.check(gated, branch: "release/1.4")
    }

    /// A block gates a deploy only if its rejection stops it: a `when: always` step
    /// between them runs after a rejection, and a block with an `if:` may be skipped.
    @Test func aBlockWhoseRejectionWouldNotStopTheDeployDoesNotCount() throws {
        let rules = try EnvironmentRules.parse(Self.file, file: "env.yml")
        for yaml in [
            """
            steps:
              - block: Ship?
                key: approve
              - {key: notify, command: x, depends_on: approve, when: always}
              - {key: deploy, command: x, environment: production, depends_on: notify}
            """,
            """
            steps:
              - block: Ship?
                key: approve
                if: 'branch == "main"'
              - {key: deploy, command: x, environment: production, depends_on: approve}
            """,
            """
            steps:
              - block: Ship?
                key: approve
              - {key: deploy, command: x, environment: production, depends_on: approve, when: on_failure}
            """,
        ] {
            #expect(throws: DeployRefusal.self, "\(yaml)") { try rules.check(try Self.definition(yaml), branch: "main") }
        }
    }

    /// An uploaded deploy is gated by a block the pipeline already holds only while that
    /// block can still be approved or once it was, never after it was rejected.
    @Test func anUploadedDeployNeedsABlockThatWasNotRejected() throws {
        let rules = try EnvironmentRules.parse(Self.file, file: "env.yml")
        let submitted = try Self.definition(
            """
            steps:
              - block: Ship?
                key: approve
              - {key: generate, command: x, depends_on: approve}
              - {key: notify, command: x, depends_on: approve, when: always}
            """)
        let rows = try CoordinatorCore.rows(for: API.SubmitPipeline(yaml: ""), definition: submitted, now: Date()).1
        let uploaded = try Self.definition("steps:\n  - {key: deploy, command: x, environment: production}\n")
        try rules.check(uploaded: uploaded, branch: "main", after: "generate", existing: rows)
        var rejected = rows
        rejected[0].state = .failed
        #expect(throws: DeployRefusal.self) { try rules.check(uploaded: uploaded, branch: "main", after: "generate", existing: rejected) }
        #expect(throws: DeployRefusal.self, "notify runs even after a rejection") {
            try rules.check(uploaded: uploaded, branch: "main", after: "notify", existing: rows)
        }
        var approved = rows
        approved[0].state = .succeeded
        try rules.check(uploaded: uploaded, branch: "main", after: "generate", existing: approved)
    }

    @Test func deployingJobsOfAOneAtATimeEnvironmentShareItsGroup() throws {
        let rules = try EnvironmentRules.parse(Self.file, file: "env.yml")
        let definition = try Self.definition(
            """
            steps:
              - {key: a, command: x, environment: staging}
              - {key: b, command: x, environment: staging, concurrency: {group: mine}}
              - {key: c, command: x, environment: preview}
            """)
        let (_, jobs) = try CoordinatorCore.rows(
            for: API.SubmitPipeline(yaml: ""), definition: definition, environments: rules, now: Date())
        #expect(jobs.map(\.concurrency?.group) == ["environment:staging", "mine", nil])
    }
}
