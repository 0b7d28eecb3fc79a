import GantryPipeline
import GantryProtocol

extension EnvironmentRules {
    /// `check` for steps uploaded into a running pipeline by a job of step `uploader`
    /// (`gantry pipeline upload`), with the same rules and messages.
    ///
    /// For `required_approval`, a `block:` gates an uploaded step if it does through the
    /// uploaded steps, the pipeline's `existing` steps, or the uploading step: the
    /// uploaded steps are inserted after it, so they run after everything it waited for
    /// (a bootstrap behind an approval uploads steps that come after the approval). As at
    /// submission, only on-success chains count (`isGated`), and an existing block counts
    /// only if it was approved or can still be: an uploader that runs `when: always` after
    /// a rejected block cannot upload a deploy that the rejection should have stopped.
    public func check(
        uploaded definition: PipelineDefinition, branch: String, after uploader: String, existing: [StoredJob]
    ) throws(DeployRefusal) {
        guard definition.steps.contains(where: { $0.environment.map { rules[$0] != nil } ?? false }) else { return }
        var graph: [String: GateNode] = [:]
        for job in existing {
            // A block counts while it can still be approved or once it was: one skipped by
            // its `if:`, rejected or cancelled gates nothing.
            let isGate = job.block != nil && ![.skipped, .failed, .cancelled, .timedOut].contains(job.state)
            var node = graph[job.key] ?? GateNode(isGate: isGate, onSuccessOnly: job.when == .onSuccess, dependsOn: [])
            node.isGate = node.isGate && isGate
            node.dependsOn.formUnion(job.dependsOn)
            graph[job.key] = node
        }
        for step in definition.steps {
            graph[step.key] = GateNode(
                isGate: step.block != nil && step.condition == nil, onSuccessOnly: step.when == .onSuccess,
                dependsOn: Set(step.dependsOn + [uploader]))
        }
        for step in definition.steps {
            guard let environment = step.environment, let rule = rules[environment] else { continue }
            if let patterns = rule.branches, !patterns.contains(where: { Self.matches(branch, pattern: $0) }) {
                throw DeployRefusal(
                    kind: .placement,
                    description: "environment \(environment), rule `branches`: uploaded step `\(step.key)` deploys from branch "
                        + "`\(branch.logSafe(maximum: 128))`, and \(environment) accepts only \(patterns.joined(separator: ", "))")
            }
            if rule.requiredApproval, !Self.isGated(step.key, in: graph) {
                throw DeployRefusal(
                    kind: .placement,
                    description: "environment \(environment), rule `required_approval`: uploaded step `\(step.key)` must come "
                        + "after a `block:` step that was approved or can still be, through steps that run only on success "
                        + "(depend on one, directly or through other steps, or be uploaded by a step that does)")
            }
        }
    }
}
