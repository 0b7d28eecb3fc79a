/// Definitions built by the coordinator rather than parsed from a file: a rollback's
/// pipeline (the deploying step of an earlier deployment, again, and the approval its
/// environment requires). Checked like a parsed one by every rule that sees it.
extension PipelineDefinition {
    public static func built(env: [String: String] = [:], steps: [Step], artifactsFrom: String?) -> PipelineDefinition {
        PipelineDefinition(env: env, steps: steps, artifactsFrom: artifactsFrom)
    }
}

extension PipelineDefinition.Step {
    /// A step of one job that runs `commands`.
    public static func built(
        key: String, name: String, commands: [String], env: [String: String], agents: [String: String],
        timeoutSeconds: Int?, cancelGraceSeconds: Int, dependsOn: [String], retry: [RetryRule]
    ) -> Self {
        var step = Self(
            key: key, name: name, commands: commands, env: env, agents: agents, timeoutSeconds: timeoutSeconds,
            cancelGraceSeconds: cancelGraceSeconds, dependsOn: dependsOn, retry: retry)
        step.jobs = [PipelineDefinition.Job(name: name, commands: commands, env: env, agents: agents)]
        return step
    }

    /// A `block:` step: an approval gate no agent runs.
    public static func builtBlock(key: String, block: BlockStep, dependsOn: [String] = []) -> Self {
        var step = Self(
            key: key, name: block.prompt, commands: [], env: [:], agents: [:], timeoutSeconds: nil, cancelGraceSeconds: 10,
            dependsOn: dependsOn, retry: [])
        step.block = block
        step.checkout = .disabled
        step.jobs = [PipelineDefinition.Job(name: block.prompt, commands: [], env: [:], agents: [:])]
        return step
    }
}
