import Yams

/// One entry of `steps:`: a step, or a `wait` (Buildkite's barrier), which is not a step
/// but orders the steps around it.
enum StepsEntry {
    case step(Node)
    case wait(Node)
}

/// `wait` and `stage:`, two shorthands for dependencies that the parser folds into each
/// step's `dependsOn`, so that the rest of the system knows only `depends_on`.
///
/// Both make a step depend on every step of the group just before its own (the steps
/// between the previous two `wait`s, or of the nearest earlier stage that has steps).
/// Because those depend on the group before them, and a step is decided only once all its
/// dependencies have ended, this is "after everything before" without listing it all: the
/// edges grow with the product of two neighbouring groups, not with the square of the
/// pipeline.
extension PipelineParser {
    /// Sorts `steps:` into steps and `wait`s and checks where the `wait`s are: not first,
    /// not last, never two in a row (each would wait for nothing).
    func stepsEntries(_ sequence: [Node]) throws(PipelineError) -> [StepsEntry] {
        var entries: [StepsEntry] = []
        for node in sequence {
            let isWait = try isWaitEntry(node)
            if isWait {
                if entries.isEmpty {
                    throw error(node, "`wait` is the first entry of `steps`: there is nothing before it to wait for; remove it")
                }
                if case .wait = entries.last {
                    throw error(node, "two `wait`s in a row: the second waits for nothing more than the first; remove one")
                }
            }
            entries.append(isWait ? .wait(node) : .step(node))
        }
        if case .wait(let node) = entries.last {
            throw error(node, "`wait` is the last entry of `steps`: no step comes after it to wait; remove it")
        }
        return entries
    }

    /// The scalar `wait`, or a mapping with the key `wait` and no value (`wait: ~`,
    /// `wait: null`, `wait: ""`, `{wait: }`): Buildkite's forms. A mapping with `wait`
    /// and anything else is refused, since Gantry has no options for it.
    private func isWaitEntry(_ node: Node) throws(PipelineError) -> Bool {
        if let scalar = node.scalar { return scalar.string == "wait" }
        guard let fields = node.mapping, let wait = fields.first(where: { $0.key.scalar?.string == "wait" }) else { return false }
        if let other = fields.first(where: { $0.key.scalar?.string != "wait" }) {
            throw error(
                other.key,
                "a `wait` takes no other keys, found `\(Self.excerpt(other.key.scalar?.string ?? ""))`: "
                    + "for a step that runs after a failure, use `when: on_failure` or `when: always` on the step after the `wait`")
        }
        guard let text = wait.value.scalar?.string, ["", "~", "null", "Null", "NULL"].contains(text) else {
            throw error(wait.value, "`wait` takes no value: write `- wait` or `- wait: ~`")
        }
        return true
    }

    /// Top-level `stages: [build, test, deploy]`: distinct names, in order.
    func stageOrder(_ node: Node) throws(PipelineError) -> [String] {
        guard let items = node.sequence, !items.isEmpty else {
            throw error(node, "`stages` must be a non-empty list of stage names such as `[build, test, deploy]`, found \(describe(node))")
        }
        guard items.count <= PipelineLimits.maximumSteps else {
            throw error(node, "`stages` lists \(items.count) stages; a pipeline has at most \(PipelineLimits.maximumSteps) steps")
        }
        var names: [String] = []
        for item in items {
            let name = try stageName(item, what: "stages")
            guard !names.contains(name) else { throw error(item, "`stages` names `\(name)` twice") }
            names.append(name)
        }
        return names
    }

    /// A stage name, in `stage:` or `stages:`: the same characters as a step key.
    func stageName(_ node: Node, what: String) throws(PipelineError) -> String {
        let text = try string(node, what: what)
        guard Self.isValidKey(text) else {
            throw error(
                node,
                "stage name `\(Self.excerpt(text))` must be 1-\(PipelineLimits.maximumKeyLength) ASCII letters, digits, `-`, `_` "
                    + "and `.`, not starting with `.`")
        }
        return text
    }

    /// Adds each step's implicit dependencies (from `wait`s or stages) to its explicit
    /// `depends_on`, explicit ones first, none twice.
    func foldImplicitDependencies(
        _ steps: inout [ParsedStep], entries: [StepsEntry], stages: [String]?, stagesNode: Node?
    ) throws(PipelineError) {
        let firstWait = entries.lazy.compactMap { entry -> Node? in
            if case .wait(let node) = entry { return node }
            return nil
        }.first
        let staged = stagesNode != nil || steps.contains { $0.stage != nil }
        var implicit: [[String]]
        if staged {
            if let firstWait {
                throw error(
                    firstWait,
                    "`wait` cannot be mixed with stages (`stage:` or `stages:`): order the steps with one or the other")
            }
            implicit = try stageDependencies(steps, stages: stages, stagesNode: stagesNode)
        } else {
            implicit = waitDependencies(steps, entries: entries)
        }
        for index in steps.indices where !implicit[index].isEmpty {
            let explicit = Set(steps[index].step.dependsOn)
            steps[index].step.dependsOn += implicit[index].filter { !explicit.contains($0) }
        }
    }

    /// Each step depends on every step between the two `wait`s before it.
    private func waitDependencies(_ steps: [ParsedStep], entries: [StepsEntry]) -> [[String]] {
        var result: [[String]] = []
        var previous: [String] = []
        var current: [String] = []
        for entry in entries {
            switch entry {
            case .wait:
                previous = current
                current = []
            case .step:
                let key = steps[result.count].step.key
                result.append(previous)
                current.append(key)
            }
        }
        return result
    }

    /// Each step depends on every step of the nearest earlier stage that has steps; the
    /// order is `stages:`, or that of first appearance.
    private func stageDependencies(
        _ steps: [ParsedStep], stages: [String]?, stagesNode: Node?
    ) throws(PipelineError) -> [[String]] {
        var order = stages ?? []
        for step in steps {
            guard let stage = step.stage, let stageNode = step.stageNode else {
                throw error(
                    step.node,
                    "step `\(step.step.key)` has no `stage:`: once the pipeline uses stages (`stage:` or `stages:`), "
                        + "every step needs one")
            }
            if !order.contains(stage) {
                if stages != nil {
                    throw error(stageNode, "unknown stage `\(stage)`: `stages` lists \(Self.list(order))")
                }
                order.append(stage)
            }
        }
        var keysByStage: [String: [String]] = [:]
        for step in steps { keysByStage[step.stage ?? "", default: []].append(step.step.key) }
        var before: [String: [String]] = [:]
        var previous: [String] = []
        for stage in order {
            before[stage] = previous
            if let keys = keysByStage[stage], !keys.isEmpty { previous = keys }
        }
        return steps.map { before[$0.stage ?? ""] ?? [] }
    }
}
