import Yams

/// Parses pipeline YAML into a `PipelineDefinition`, rejecting anything it does not
/// understand with the file, line and column and what was expected.
///
/// The parser walks Yams' node tree rather than decoding into `Codable` types because
/// `Codable` loses source positions, and an error without a line number is the most
/// common complaint about CI configuration.
///
/// Its input comes from anyone who may call the API, so it enforces `PipelineLimits`:
/// the file's size first, then its YAML complexity (`YAMLComplexityCheck`, before Yams
/// composes anything), then every count, length and duration as it walks the tree. It is
/// a value with no shared state, so callers can (and the coordinator should) parse off the
/// actor that schedules jobs; `parse` is also the pipeline fuzz target's entry point.
public struct PipelineParser: Sendable {
    public static let stepKeys: Set<String> = Set<String>([
        "key", "name", "label", "block", "command", "commands", "env", "agents", "timeout", "cancel_grace", "depends_on", "retry",
        "secrets", "environment", "if", "when", "soft_fail", "priority", "concurrency", "matrix", "parallelism", "stage",
        "checkout",
    ]).union(transferStepKeys)
    /// Longest accepted `retry` limit: retries are for flakes, not loops.
    public static let maximumRetryLimit = 10
    public static let topLevelKeys: Set<String> = ["steps", "env", "stages", "artifacts_from"]

    public var file: String
    /// Set when the file is uploaded into a running pipeline (`PipelineUploadContext`).
    public var upload: PipelineUploadContext?
    /// Set by the coordinator when the file promotes another pipeline's artifacts
    /// (`--from-pipeline`, or a pipeline with `artifacts_from` that steps upload into):
    /// a `download:` may then name a step of the promoted pipeline, which is not a step
    /// of this file. The parser cannot see that pipeline, so the coordinator checks each
    /// such step against it (`CoordinatorCore.checkPromotion`). A file's own top-level
    /// `artifacts_from:` has the same effect without the option.
    public var promotes: Bool

    public init(file: String = "pipeline.yml", upload: PipelineUploadContext? = nil, promotes: Bool = false) {
        self.file = file
        self.upload = upload
        self.promotes = promotes
    }

    public func parse(_ text: String) throws(PipelineError) -> PipelineDefinition {
        let size = text.utf8.count
        guard size <= PipelineLimits.maximumYAMLBytes else {
            throw PipelineError(
                file: file, line: nil, column: nil,
                message: "the file is \(size) bytes; the limit is \(Self.bytes(PipelineLimits.maximumYAMLBytes)): "
                    + "split the pipeline or move long scripts into the repository")
        }
        try YAMLComplexityCheck(file: file).check(text)
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw error(nil, "the file is empty: expected a mapping with `steps:`")
            }
            root = node
        } catch let error as PipelineError {
            throw error
        } catch let error as YamlError {
            throw self.yamlError(error)
        } catch {
            throw PipelineError(file: file, line: nil, column: nil, message: "\(error)")
        }
        guard let top = root.mapping else {
            throw error(root, "expected a mapping with `steps:` at the top level, found \(describe(root))")
        }
        var env: [String: String] = [:]
        var stepsNode: Node?
        var stagesNode: Node?
        var stages: [String]?
        var artifactsFrom: String?
        for (keyNode, value) in top {
            let key = try scalarKey(keyNode)
            switch key {
            case "steps": stepsNode = value
            case "env": env = try environment(value)
            case "stages":
                stages = try stageOrder(value)
                stagesNode = value
            case "artifacts_from": artifactsFrom = try pipelineReference(value)
            default:
                throw error(keyNode, "unknown top-level key `\(Self.excerpt(key))`: expected one of \(Self.topLevelKeys.sorted().joined(separator: ", "))")
            }
        }
        guard let stepsNode else { throw error(root, "missing `steps:`: a pipeline needs at least one step") }
        guard let sequence = stepsNode.sequence else {
            throw error(stepsNode, "`steps` must be a list of steps, found \(describe(stepsNode))")
        }
        guard !sequence.isEmpty else { throw error(stepsNode, "`steps` is empty: a pipeline needs at least one step") }
        let entries = try stepsEntries(Array(sequence))
        let stepCount = entries.count(where: { if case .step = $0 { true } else { false } })
        guard stepCount <= PipelineLimits.maximumSteps else {
            throw error(
                stepsNode,
                "the pipeline has \(stepCount) steps; the limit is \(PipelineLimits.maximumSteps): split it into several pipelines")
        }

        // Each step as written, with the job counts checked before anything is expanded.
        var steps: [ParsedStep] = []
        var keyNodes: [String: Node] = [:]
        var jobCount = upload?.existingJobs ?? 0
        for case .step(let stepNode) in entries {
            let parsed = try parseStep(stepNode, ordinal: steps.count + 1)
            let key = parsed.step.key
            if keyNodes[key] != nil {
                throw error(stepNode, "duplicate step key `\(key)`: keys must be unique")
            }
            if let upload, upload.existingKeys.contains(key) {
                throw error(
                    parsed.node["key"] ?? stepNode,
                    "step key `\(key)` is already a step of this pipeline: an uploaded step needs a key of its own")
            }
            keyNodes[key] = stepNode
            jobCount += parsed.jobCount
            guard jobCount <= PipelineLimits.maximumJobs else {
                if let upload {
                    throw error(
                        parsed.expansionNode,
                        "the pipeline has \(upload.existingJobs) jobs, and the uploaded steps up to `\(key)` bring it to "
                            + "\(jobCount); the limit is \(PipelineLimits.maximumJobs) jobs per pipeline, uploads included")
                }
                throw error(
                    parsed.expansionNode,
                    "the steps up to `\(key)` expand into \(jobCount) jobs; the limit is \(PipelineLimits.maximumJobs) "
                        + "jobs per pipeline: split it into several pipelines")
            }
            steps.append(parsed)
        }

        // Dependencies: explicit ones checked, implicit ones (`wait`, `stage:`) added, and
        // the result checked for cycles.
        for parsed in steps {
            let step = parsed.step
            for dependency in step.dependsOn where keyNodes[dependency] == nil {
                if let upload, upload.existingKeys.contains(dependency) {
                    guard upload.later.contains(dependency) else { continue }
                    throw error(
                        parsed.dependsOnNode ?? parsed.node,
                        "step `\(step.key)` depends on `\(dependency)`, which runs after the uploading step and so after "
                            + "every uploaded step: that is a cycle")
                }
                throw error(
                    parsed.dependsOnNode ?? parsed.node,
                    "step `\(step.key)` depends on `\(Self.excerpt(dependency))`, which is not a step key (known: \(Self.list(steps.map(\.step.key))))")
            }
            if step.dependsOn.contains(step.key) {
                throw error(parsed.dependsOnNode ?? parsed.node, "step `\(step.key)` depends on itself")
            }
        }
        try checkDownloads(
            steps, keys: Set(keyNodes.keys).union(upload?.existingKeys ?? []), promotes: promotes || artifactsFrom != nil)
        try foldImplicitDependencies(&steps, entries: entries, stages: stages, stagesNode: stagesNode)
        if let cycle = Self.findCycle(steps.map(\.step)), let first = steps.first(where: { $0.step.key == cycle[0] }) {
            throw error(first.dependsOnNode ?? first.node, "dependency cycle: \(cycle.joined(separator: " → "))")
        }
        for parsed in steps where parsed.step.when != .onSuccess && parsed.step.dependsOn.isEmpty {
            throw error(
                parsed.whenNode ?? parsed.node,
                "step `\(parsed.step.key)` runs `when: \(parsed.step.when.rawValue)`, so it needs something to follow: "
                    + "add `depends_on` or put it after a `wait`")
        }
        for parsed in steps {
            if let clash = parsed.step.secrets.first(where: { env[$0] != nil }) {
                throw error(
                    parsed.node["secrets"] ?? parsed.node,
                    "`\(clash)` is both in the pipeline's `env` and in step `\(parsed.step.key)`'s `secrets`: "
                        + "a secret must come from the vault only, remove it from `env`")
            }
        }
        try expandJobs(&steps, pipelineEnvironment: env)
        return PipelineDefinition(env: env, steps: steps.map(\.step), artifactsFrom: artifactsFrom)
    }

    /// A cycle as a list of keys, or nil. Depth-first search with colours.
    static func findCycle(_ steps: [PipelineDefinition.Step]) -> [String]? {
        let edges = Dictionary(uniqueKeysWithValues: steps.map { ($0.key, $0.dependsOn) })
        var colour: [String: Int] = [:]  // 1 = on stack, 2 = done
        var stack: [String] = []
        func visit(_ key: String) -> [String]? {
            colour[key] = 1
            stack.append(key)
            for next in edges[key] ?? [] {
                if colour[next] == 1, let start = stack.firstIndex(of: next) {
                    return Array(stack[start...]) + [next]
                }
                if colour[next] == nil, let cycle = visit(next) { return cycle }
            }
            stack.removeLast()
            colour[key] = 2
            return nil
        }
        for step in steps where colour[step.key] == nil {
            if let cycle = visit(step.key) { return cycle }
        }
        return nil
    }
}
