extension PipelineDefinition.Step {
    /// About how many bytes this step becomes as a job: what the store writes and a lease
    /// carries. The environment is the one the process will get from the pipeline, the
    /// pipeline-level `env` merged with the step's own, counted as `NAME=value` plus a NUL,
    /// as `execve` counts it. Bounded by `PipelineLimits.maximumStepBytes`, and the sum over
    /// all steps by `maximumExpandedBytes`.
    func storedBytes(inheriting pipelineEnvironment: [String: String]) -> Int {
        var total = key.utf8.count + name.utf8.count
        for command in commands { total += command.utf8.count + 1 }
        for (variable, value) in pipelineEnvironment.merging(env, uniquingKeysWith: { $1 }) {
            total += variable.utf8.count + value.utf8.count + 2
        }
        for (label, value) in agents { total += label.utf8.count + value.utf8.count }
        for dependency in dependsOn { total += dependency.utf8.count }
        for secret in secrets { total += secret.utf8.count }
        total += environment?.utf8.count ?? 0
        return total
    }
}
