import GantryPipeline
import Yams

/// The protection rules of deployment environments, from the coordinator's configuration
/// (`serve --environments FILE`), checked at every submission (and rebuild) of a pipeline
/// with `environment:` steps, before anything is stored:
///
/// ```yaml
/// environments:
///   production:
///     branches: [main, "release/*"]   # which branches may deploy here (default: any)
///     required_approval: true         # a block: step must come before the deploy
///     one_at_a_time: true            # default: at most one deploying job at a time
///   staging: {}
/// ```
///
/// Rules live with the operator, not in the pipeline file, so a pipeline cannot lift them.
/// An environment without rules is governed only by who may deploy to it.
public struct EnvironmentRules: Sendable, Equatable {
    public struct Rule: Sendable, Equatable {
        /// Branch patterns (`*` matches any run of characters, `/` included); nil: any.
        public var branches: [String]?
        /// A `block:` step must come before (transitively) every step deploying here.
        public var requiredApproval: Bool
        /// Deploying jobs of this environment run one at a time, across all pipelines, in
        /// the order they became runnable (the concurrency group `environment:NAME`).
        public var oneAtATime: Bool

        public init(branches: [String]? = nil, requiredApproval: Bool = false, oneAtATime: Bool = true) {
            self.branches = branches
            self.requiredApproval = requiredApproval
            self.oneAtATime = oneAtATime
        }
    }

    public var rules: [String: Rule]

    public init(rules: [String: Rule] = [:]) {
        self.rules = rules
    }

    public static let none = EnvironmentRules()

    /// Most environments and branch patterns one file may hold.
    static let maximumEnvironments = 100
    static let maximumBranchPatterns = 100
    static let maximumPatternBytes = 256

    /// Parses a rules file; refuses anything it does not understand, with its place.
    public static func parse(_ text: String, file: String) throws(PipelineError) -> EnvironmentRules {
        func fail(_ node: Node?, _ message: String) -> PipelineError {
            PipelineError(file: file, line: node?.mark?.line, column: node?.mark?.column, message: message)
        }
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { return .none }
            root = node
        } catch {
            throw PipelineError(file: file, line: nil, column: nil, message: "invalid YAML: \(error)")
        }
        guard let top = root.mapping, top.count == 1, top.first?.key.scalar?.string == "environments",
            let environments = top.first?.value.mapping
        else { throw fail(root, "expected a mapping `environments:` of environment names to their rules") }
        guard environments.count <= maximumEnvironments else {
            throw fail(root, "\(environments.count) environments; the limit is \(maximumEnvironments)")
        }
        var rules: [String: Rule] = [:]
        for (nameNode, body) in environments {
            guard let name = nameNode.scalar?.string, PipelineParser.isValidEnvironmentName(name) else {
                throw fail(nameNode, "an environment name is 1-63 ASCII letters, digits, `.`, `_` or `-`")
            }
            var rule = Rule()
            let fields = body.mapping.map { Array($0) } ?? []
            for (keyNode, value) in fields {
                switch keyNode.scalar?.string {
                case "branches":
                    guard let items = value.sequence, !items.isEmpty, items.count <= maximumBranchPatterns else {
                        throw fail(value, "`branches` is a list of 1-\(maximumBranchPatterns) branch patterns such as `[main, \"release/*\"]`")
                    }
                    var patterns: [String] = []
                    for item in items {
                        guard let pattern = item.scalar?.string, !pattern.isEmpty, pattern.utf8.count <= maximumPatternBytes,
                            !pattern.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
                        else { throw fail(item, "a branch pattern is 1-\(maximumPatternBytes) bytes on one line") }
                        patterns.append(pattern)
                    }
                    rule.branches = patterns
                case "required_approval": rule.requiredApproval = try flag(value, "required_approval", fail)
                case "one_at_a_time": rule.oneAtATime = try flag(value, "one_at_a_time", fail)
                default:
                    throw fail(keyNode, "unknown rule `\(keyNode.scalar?.string ?? "?")`: expected branches, required_approval or one_at_a_time")
                }
            }
            if body.mapping == nil, body.scalar.map({ !$0.string.isEmpty && $0.string != "~" && $0.string != "null" }) ?? true {
                throw fail(body, "the rules of `\(name)` must be a mapping (`{}` for none)")
            }
            rules[name] = rule
        }
        return EnvironmentRules(rules: rules)
    }

    private static func flag(_ node: Node, _ name: String, _ fail: (Node?, String) -> PipelineError) throws(PipelineError) -> Bool {
        switch node.scalar?.string.lowercased() {
        case "true": return true
        case "false": return false
        default: throw fail(node, "`\(name)` must be true or false")
        }
    }

    /// Refuses a pipeline that breaks a rule, naming the environment, the rule and the step.
    public func check(_ definition: PipelineDefinition, branch: String) throws(DeployRefusal) {
        let steps = Dictionary(definition.steps.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        for step in definition.steps {
            guard let environment = step.environment, let rule = rules[environment] else { continue }
            if let patterns = rule.branches, !patterns.contains(where: { Self.matches(branch, pattern: $0) }) {
                throw DeployRefusal(
                    kind: .placement,
                    description: "environment \(environment), rule `branches`: step `\(step.key)` deploys from branch "
                        + "`\(branch.logSafe(maximum: 128))`, and \(environment) accepts only \(patterns.joined(separator: ", "))")
            }
            if rule.requiredApproval, !Self.hasBlockBefore(step, in: steps) {
                throw DeployRefusal(
                    kind: .placement,
                    description: "environment \(environment), rule `required_approval`: step `\(step.key)` must come after a "
                        + "`block:` step without `if:`, through steps that run only on success (depend on one, directly or "
                        + "through other steps; a `when: always` or `on_failure` step between them would run after a rejection)")
            }
        }
    }

    /// The concurrency group a deploying job gets when its step sets none.
    public func concurrency(for environment: String?) -> ConcurrencyRule? {
        guard let environment, rules[environment]?.oneAtATime == true else { return nil }
        return ConcurrencyRule(group: "environment:\(environment)", limit: 1)
    }

    /// `*` matches any run of characters (`/` included); everything else itself.
    static func matches(_ text: String, pattern: String) -> Bool {
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false).map(Substring.init)
        guard parts.count > 1 else { return text == pattern }
        var rest = Substring(text)
        guard rest.hasPrefix(parts[0]) else { return false }
        rest = rest.dropFirst(parts[0].count)
        for (index, part) in parts.enumerated().dropFirst() {
            if index == parts.count - 1 { return rest.hasSuffix(part) && rest.count >= part.count }
            guard let range = rest.range(of: part) else { return false }
            rest = rest[range.upperBound...]
        }
        return true
    }

    /// Whether a `block:` step gates `step`: whether its rejection keeps `step` from
    /// running. A rejected block ends failed, so only a chain of dependencies on which
    /// every step runs on success alone (`when: on_success`) carries the rejection down;
    /// a step with `when: always` or `on_failure` between them runs anyway and breaks
    /// the chain. A block with an `if:` may be skipped, and a skipped block passes: it
    /// gates nothing.
    static func hasBlockBefore(_ step: PipelineDefinition.Step, in steps: [String: PipelineDefinition.Step]) -> Bool {
        var graph: [String: GateNode] = [:]
        for (key, step) in steps {
            graph[key] = GateNode(
                isGate: step.block != nil && step.condition == nil, onSuccessOnly: step.when == .onSuccess,
                dependsOn: Set(step.dependsOn))
        }
        return isGated(step.key, in: graph)
    }

    /// One step of a pipeline as `required_approval` sees it.
    struct GateNode {
        /// A block that will be decided, or was approved.
        var isGate: Bool
        /// Runs only if every step it depends on passed.
        var onSuccessOnly: Bool
        var dependsOn: Set<String>
    }

    /// Whether a gate comes before `key` through dependencies that all run on success only.
    static func isGated(_ key: String, in graph: [String: GateNode]) -> Bool {
        guard let start = graph[key], start.onSuccessOnly else { return false }
        var seen: Set<String> = [key]
        var frontier = Array(start.dependsOn)
        while let next = frontier.popLast() {
            guard seen.insert(next).inserted, let upstream = graph[next] else { continue }
            if upstream.isGate { return true }
            if upstream.onSuccessOnly { frontier += upstream.dependsOn }
        }
        return false
    }
}
