extension PipelineDefinition.Step {
    /// About how many bytes this step becomes as a job: what the store writes and a lease
    /// carries. The environment is the one the process will get from the pipeline, the
    /// pipeline-level `env` merged with the step's own, counted as `NAME=value` plus a NUL,
    /// as `execve` counts it. Bounded by `PipelineLimits.maximumStepBytes`, and the sum over
    /// all jobs by `maximumExpandedBytes`.
    func storedBytes(inheriting pipelineEnvironment: [String: String]) -> Int {
        storedBytes(
            nameBytes: name.utf8.count, commandBytes: commands.map(\.utf8.count),
            environmentBytes: pipelineEnvironment.merging(env, uniquingKeysWith: { $1 }).mapValues(\.utf8.count),
            agentBytes: agents.map { $0.key.utf8.count + $0.value.utf8.count })
    }

    /// The same for one job of this step, from the sizes of its interpolated strings, so
    /// that the parser can refuse a job before building it; the one formula both use.
    /// `environmentBytes` is the job's environment merged over the pipeline's, as name →
    /// value size; `agentBytes` each label's name and value size together.
    func storedBytes(nameBytes: Int, commandBytes: [Int], environmentBytes: [String: Int], agentBytes: [Int]) -> Int {
        var total = key.utf8.count + nameBytes
        for command in commandBytes { total += command + 1 }
        for (variable, value) in environmentBytes { total += variable.utf8.count + value + 2 }
        for label in agentBytes { total += label }
        for dependency in dependsOn { total += dependency.utf8.count }
        for secret in secrets { total += secret.utf8.count }
        total += environment?.utf8.count ?? 0
        total += transfers.storedBytes
        return total
    }
}
