import Yams

/// Building each step's `jobs`: one per matrix combination and parallel copy, with every
/// string interpolated and checked again against the limits a step's strings have.
///
/// A job is measured before it is built (`MatrixTemplate.renderedBytes`), and refused
/// there, so that no string beyond a limit is ever allocated: the per-step and
/// per-pipeline job counts were checked while parsing, and the bytes per job and in all
/// are checked here before each job's strings exist.
extension PipelineParser {
    /// The names `parallelism:` sets in each copy's `env`, over the step's own.
    static let parallelJobVariable = "GANTRY_PARALLEL_JOB"
    static let parallelJobCountVariable = "GANTRY_PARALLEL_JOB_COUNT"

    /// Sets `jobs` on every step, in order, keeping the bytes of all jobs (each with the
    /// pipeline-level `env` it inherits) within `PipelineLimits.maximumExpandedBytes`.
    func expandJobs(_ steps: inout [ParsedStep], pipelineEnvironment: [String: String]) throws(PipelineError) {
        var totalBytes = 0
        for index in steps.indices {
            steps[index].step.jobs = try jobs(of: steps[index], pipelineEnvironment: pipelineEnvironment, totalBytes: &totalBytes)
        }
    }

    private func jobs(
        of parsed: ParsedStep, pipelineEnvironment: [String: String], totalBytes: inout Int
    ) throws(PipelineError) -> [PipelineDefinition.Job] {
        let step = parsed.step
        let combinations: [MatrixCombination?] = step.matrix == nil ? [nil] : parsed.combinations
        let copies: [Int?] = step.parallelism.map { count in (0..<count).map { $0 } } ?? [nil]
        let isPlain = step.matrix == nil && step.parallelism == nil
        let inherited = pipelineEnvironment.mapValues(\.utf8.count)
        var jobs: [PipelineDefinition.Job] = []
        jobs.reserveCapacity(parsed.jobCount)
        for combination in combinations {
            let values = combination?.values ?? [:]
            for copy in copies {
                let name = try jobName(parsed, combination, copy)

                var commandBytes: [Int] = []
                for command in parsed.commands {
                    let length = command.template.renderedBytes(values)
                    guard length <= PipelineLimits.maximumCommandBytes else {
                        throw error(
                            command.node,
                            "with \(Self.excerpt(combination.map(Self.describe) ?? "")), a command is \(length) bytes long; "
                                + "the limit is \(Self.bytes(PipelineLimits.maximumCommandBytes)) "
                                + "(the system refuses longer arguments): move it into a script in the repository")
                    }
                    commandBytes.append(length)
                }
                var environmentBytes = inherited
                for (variable, value) in parsed.env {
                    let length = value.template.renderedBytes(values)
                    guard length <= PipelineLimits.maximumEnvironmentValueBytes else {
                        throw error(
                            value.node,
                            "with \(Self.excerpt(combination.map(Self.describe) ?? "")), `env.\(Self.excerpt(variable))` is \(length) "
                                + "bytes long; the limit is \(Self.bytes(PipelineLimits.maximumEnvironmentValueBytes)): "
                                + "put large data in a file in the repository")
                    }
                    environmentBytes[variable] = length
                }
                let parallelEnvironment = copy.map { index in
                    [Self.parallelJobVariable: "\(index)", Self.parallelJobCountVariable: "\(copies.count)"]
                } ?? [:]
                for (variable, value) in parallelEnvironment { environmentBytes[variable] = value.utf8.count }
                var agentBytes: [Int] = []
                for (label, value) in parsed.agents {
                    let length = value.template.renderedBytes(values)
                    guard length <= PipelineLimits.maximumAgentLabelValueBytes else {
                        throw error(
                            value.node,
                            "with \(Self.excerpt(combination.map(Self.describe) ?? "")), the label `agents.\(Self.excerpt(label))` "
                                + "is \(length) bytes long; agent label values have at most "
                                + "\(PipelineLimits.maximumAgentLabelValueBytes) bytes, so no agent could match it")
                    }
                    agentBytes.append(label.utf8.count + length)
                }
                var concurrency = step.concurrency
                if let group = parsed.group {
                    // Measured before it is rendered: the group as written may be long.
                    guard group.template.renderedBytes(values) <= PipelineLimits.maximumConcurrencyGroupBytes else {
                        throw error(
                            group.node,
                            "`concurrency.group` is \(group.template.renderedBytes(values)) bytes long after interpolation; "
                                + "the limit is \(PipelineLimits.maximumConcurrencyGroupBytes)")
                    }
                    let rendered = group.template.render(values)
                    try checkConcurrencyGroup(rendered, group.node)
                    concurrency?.group = rendered
                }

                let jobBytes = step.storedBytes(
                    nameBytes: name.utf8.count, commandBytes: commandBytes, environmentBytes: environmentBytes,
                    agentBytes: agentBytes)
                guard jobBytes <= PipelineLimits.maximumStepBytes else {
                    let what = isPlain ? "step `\(step.key)`" : "job `\(Self.excerpt(name))` of step `\(step.key)`"
                    throw error(
                        parsed.node,
                        "\(what) carries \(jobBytes) bytes of commands, environment (including the pipeline's `env`) "
                            + "and labels; the limit is \(Self.bytes(PipelineLimits.maximumStepBytes)): move long scripts into the repository")
                }
                totalBytes += jobBytes
                guard totalBytes <= PipelineLimits.maximumExpandedBytes else {
                    throw error(
                        isPlain ? parsed.node : parsed.expansionNode,
                        "the steps up to `\(step.key)` carry more than \(Self.bytes(PipelineLimits.maximumExpandedBytes)) "
                            + "(each step counts the pipeline's `env` again), counting every job of a `matrix` or `parallelism` step: "
                            + "make the pipeline-level `env` smaller, move long scripts into the repository, or split the pipeline")
                }

                var env: [String: String] = [:]
                for (variable, value) in parsed.env { env[variable] = value.template.render(values) }
                env.merge(parallelEnvironment) { $1 }
                var agents: [String: String] = [:]
                for (label, value) in parsed.agents { agents[label] = value.template.render(values) }
                jobs.append(
                    PipelineDefinition.Job(
                        name: name, commands: parsed.commands.map { $0.template.render(values) }, env: env, agents: agents,
                        matrix: values, parallelIndex: copy, concurrency: concurrency))
            }
        }
        return jobs
    }

    /// `test (linux, 6.1)` (values in the combination's key order) when the name does not
    /// refer to the matrix; the interpolated name when it does; ` 2/4` appended for a
    /// parallel copy. Checked like a written name.
    private func jobName(_ parsed: ParsedStep, _ combination: MatrixCombination?, _ copy: Int?) throws(PipelineError) -> String {
        let values = combination?.values ?? [:]
        var name: String
        if let template = parsed.name?.template, !template.references.isEmpty {
            // At most 256 bytes of text and references, each at most 256 bytes: small.
            name = template.render(values)
        } else if let combination {
            name = "\(parsed.step.name) (\(combination.pairs.map(\.value).joined(separator: ", ")))"
        } else {
            name = parsed.step.name
        }
        if let copy, let count = parsed.step.parallelism { name += " \(copy + 1)/\(count)" }
        try checkName(name, parsed.name?.node ?? parsed.expansionNode, what: "the job name `\(Self.excerpt(name))`")
        return name
    }
}
