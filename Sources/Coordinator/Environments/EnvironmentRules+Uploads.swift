import GantryPipeline
import GantryProtocol

extension EnvironmentRules {
    /// `check` for steps uploaded into a running pipeline by a job of step `uploader`
    /// (`gantry pipeline upload`), with the same rules and messages.
    ///
    /// For `required_approval`, a `block:` comes before an uploaded step if it does
    /// through the uploaded steps, the pipeline's `existing` steps, or the uploading step:
    /// the uploaded steps are inserted after it, so they run after everything it waited
    /// for (a bootstrap behind an approval uploads steps that come after the approval).
    public func check(
        uploaded definition: PipelineDefinition, branch: String, after uploader: String, existing: [StoredJob]
    ) throws(DeployRefusal) {
        guard definition.steps.contains(where: { $0.environment.map { rules[$0] != nil } ?? false }) else { return }
        var graph: [String: (isBlock: Bool, dependsOn: Set<String>)] = [:]
        for job in existing {
            var node = graph[job.key] ?? (false, [])
            node.isBlock = node.isBlock || job.block != nil
            node.dependsOn.formUnion(job.dependsOn)
            graph[job.key] = node
        }
        for step in definition.steps {
            graph[step.key] = (step.block != nil, Set(step.dependsOn + [uploader]))
        }
        for step in definition.steps {
            guard let environment = step.environment, let rule = rules[environment] else { continue }
            if let patterns = rule.branches, !patterns.contains(where: { Self.matches(branch, pattern: $0) }) {
                throw DeployRefusal(
                    kind: .placement,
                    description: "environment \(environment), rule `branches`: uploaded step `\(step.key)` deploys from branch "
                        + "`\(branch.logSafe(maximum: 128))`, and \(environment) accepts only \(patterns.joined(separator: ", "))")
            }
            if rule.requiredApproval, !Self.hasBlockBefore(step.key, in: graph) {
                throw DeployRefusal(
                    kind: .placement,
                    description: "environment \(environment), rule `required_approval`: uploaded step `\(step.key)` must come "
                        + "after a `block:` step (depend on one, directly or through other steps, or be uploaded by a step "
                        + "that does)")
            }
        }
    }

    /// Whether a `block:` step comes before `key` through the dependencies of `graph`.
    static func hasBlockBefore(_ key: String, in graph: [String: (isBlock: Bool, dependsOn: Set<String>)]) -> Bool {
        var seen: Set<String> = [key]
        var frontier = Array(graph[key]?.dependsOn ?? [])
        while let next = frontier.popLast() {
            guard seen.insert(next).inserted, let upstream = graph[next] else { continue }
            if upstream.isBlock { return true }
            frontier += upstream.dependsOn
        }
        return false
    }
}
