import Yams

/// A string of a step that `{{matrix.NAME}}` is interpolated into, with where it is
/// written, so a job whose interpolated value breaks a limit is reported at that place.
struct TemplatedValue {
    var template: MatrixTemplate
    var node: Node
}

/// A step as parsed, before its implicit dependencies are folded in and its jobs are
/// built: the step as written (templates not interpolated), the nodes later checks point
/// at, and what expansion needs.
struct ParsedStep {
    var step: PipelineDefinition.Step
    var node: Node
    var dependsOnNode: Node?
    var whenNode: Node?
    var stage: String?
    var stageNode: Node?
    var matrixNode: Node?
    var parallelismNode: Node?
    /// The matrix's combinations in job order; empty without `matrix:`.
    var combinations: [MatrixCombination]
    /// The step's `name`/`label` as written; nil when it has none (the name is the key).
    var name: TemplatedValue?
    var commands: [TemplatedValue]
    /// The step's `env` and `agents` values, by name, sorted by name.
    var env: [(name: String, value: TemplatedValue)]
    var agents: [(label: String, value: TemplatedValue)]
    var group: TemplatedValue?
    /// Where each `download:` entry's `step` is written, in order.
    var downloadNodes: [Node] = []
    /// How many jobs the step expands into: combinations (1 without `matrix:`) × copies.
    var jobCount: Int

    /// Where an error about the step's expansion points: its `matrix:`, else its
    /// `parallelism:`, else the step.
    var expansionNode: Node { matrixNode ?? parallelismNode ?? node }

    var templates: [TemplatedValue] {
        (name.map { [$0] } ?? []) + commands + env.map(\.value) + agents.map(\.value) + (group.map { [$0] } ?? [])
    }
}

extension PipelineParser {
    /// One entry of `steps:` that is not a `wait`. `ordinal` is its 1-based position among
    /// the steps (`wait`s not counted), which names it in messages and in its default key.
    func parseStep(_ node: Node, ordinal: Int) throws(PipelineError) -> ParsedStep {
        guard let mapping = node.mapping else {
            throw error(node, "step \(ordinal) must be a mapping with at least `command`, found \(describe(node))")
        }
        if Self.isBlockStep(node) { return try parseBlockStep(node, ordinal: ordinal) }
        var key: String?
        var name: String?
        var nameNode: Node?
        var commands: [String]?
        var commandsNode: Node?
        var env: [String: String] = [:]
        var envNode: Node?
        var agents: [String: String] = [:]
        var agentsNode: Node?
        var timeout: Int?
        var cancelGrace = 10
        var dependsOn: [String] = []
        var retry = RetryRule.defaults
        var secrets: [String] = []
        var secretsLocation: PipelineDefinition.Location?
        var environmentName: String?
        var condition: StepCondition?
        var when = RunWhen.onSuccess
        var softFail = SoftFail.never
        var priority = 0
        var concurrency: ConcurrencyRule?
        var concurrencyNode: Node?
        var matrixNode: Node?
        var parallelism: Int?
        var parallelismNode: Node?
        var whenNode: Node?
        var stage: String?
        var stageNode: Node?
        var checkout = CheckoutOptions.default
        var transfers = StepTransfers()
        var downloadNodes: [Node] = []
        for (keyNode, value) in mapping {
            let field = try scalarKey(keyNode)
            switch field {
            case "key": key = try stepKey(value)
            case _ where Self.transferStepKeys.contains(field):
                try transferField(field, keyNode: keyNode, value: value, into: &transfers, nodes: &downloadNodes)
            case "name", "label":
                let text = try string(value, what: field)
                try checkName(text, value, what: "`\(field)`")
                name = text
                nameNode = value
            case "command", "commands":
                commands = try commandList(value)
                commandsNode = value
            case "env":
                env = try environment(value)
                envNode = value
            case "agents":
                agents = try agentSelector(value)
                agentsNode = value
            case "timeout": timeout = try duration(value, what: "timeout", maximum: PipelineLimits.maximumTimeoutSeconds)
            case "cancel_grace":
                cancelGrace = try duration(value, what: "cancel_grace", maximum: PipelineLimits.maximumCancelGraceSeconds)
            case "retry": retry = try retryRules(value)
            case "depends_on": dependsOn = try dependencies(value)
            case "secrets":
                secrets = try secretNames(value)
                secretsLocation = value.mark.map { .init(line: $0.line, column: $0.column) }
            case "environment": environmentName = try deployEnvironment(value)
            case "if": condition = try self.condition(value)
            case "when":
                when = try runWhen(value)
                whenNode = value
            case "soft_fail": softFail = try self.softFail(value)
            case "priority": priority = try self.priority(value)
            case "concurrency":
                concurrency = try self.concurrency(value)
                concurrencyNode = value
            case "matrix": matrixNode = value
            case "parallelism":
                parallelism = try self.parallelism(value)
                parallelismNode = value
            case "stage":
                stage = try stageName(value, what: "stage")
                stageNode = value
            case "checkout": checkout = try checkoutOptions(value)
            case "allowed", "fields":
                throw error(
                    keyNode,
                    "`\(field)` belongs to a block step (an approval gate): add `block: PROMPT` to make this step one, "
                        + "or remove `\(field)`")
            default:
                throw error(keyNode, "unknown step key `\(Self.excerpt(field))`: expected one of \(Self.stepKeys.sorted().joined(separator: ", "))")
            }
        }
        guard let commands, let commandsNode else { throw error(node, "step \(ordinal) has no `command`") }
        if let clash = secrets.first(where: { env[$0] != nil }) {
            throw error(
                node["secrets"] ?? node,
                "`\(clash)` is both in the step's `env` and in its `secrets`: a secret must come from the vault only, "
                    + "remove it from `env`")
        }
        let resolvedKey = key ?? "\(upload?.defaultKeyPrefix ?? "")step-\(ordinal)"

        // The strings `{{matrix.NAME}}` is interpolated into, each with where it is written.
        let commandNodes = commandsNode.sequence ?? [commandsNode]
        var parsed = ParsedStep(
            step: PipelineDefinition.Step(
                key: resolvedKey, name: name ?? resolvedKey, commands: commands, env: env, agents: agents,
                timeoutSeconds: timeout, cancelGraceSeconds: cancelGrace, dependsOn: dependsOn, retry: retry,
                secrets: secrets, secretsLocation: secretsLocation, environment: environmentName),
            node: node, dependsOnNode: node["depends_on"], whenNode: whenNode, stage: stage, stageNode: stageNode,
            matrixNode: matrixNode, parallelismNode: parallelismNode, combinations: [],
            name: nil, commands: [], env: [], agents: [], group: nil, jobCount: 1)
        if let name, let nameNode { parsed.name = try templated(name, nameNode) }
        for (command, commandNode) in zip(commands, commandNodes) {
            parsed.commands.append(try templated(command, commandNode))
        }
        if let envNode {
            for (variable, value) in env.sorted(by: { $0.key < $1.key }) {
                parsed.env.append((variable, try templated(value, Self.keyNode(variable, in: envNode))))
            }
        }
        if let agentsNode {
            for (label, value) in agents.sorted(by: { $0.key < $1.key }) {
                parsed.agents.append((label, try templated(value, Self.keyNode(label, in: agentsNode))))
            }
        }
        if let concurrency, let concurrencyNode {
            parsed.group = try templated(concurrency.group, concurrencyNode["group"] ?? concurrencyNode)
        }

        parsed.step.condition = condition
        parsed.step.transfers = transfers
        parsed.downloadNodes = downloadNodes
        parsed.step.when = when
        parsed.step.softFail = softFail
        parsed.step.priority = priority
        parsed.step.concurrency = concurrency
        parsed.step.parallelism = parallelism
        parsed.step.checkout = checkout
        if let matrixNode {
            parsed.combinations = try matrix(matrixNode)
            parsed.step.matrix = parsed.combinations.map(\.values)
        } else if let used = parsed.templates.first(where: { !$0.template.references.isEmpty }) {
            throw error(
                used.node,
                "`{{matrix.\(used.template.references[0])}}` is used, but step `\(resolvedKey)` has no `matrix:`: "
                    + "add one, or write the value out")
        }

        let combinations = matrixNode == nil ? 1 : parsed.combinations.count
        let copies = parallelism ?? 1
        parsed.jobCount = combinations * copies
        guard parsed.jobCount <= PipelineLimits.maximumJobsPerStep else {
            let parts = [
                matrixNode.map { _ in "\(combinations) matrix combinations" },
                parallelism.map { "\($0) parallel copies" },
            ].compactMap { $0 }.joined(separator: " × ")
            throw error(
                parsed.expansionNode,
                "step `\(resolvedKey)` expands into \(parsed.jobCount) jobs (\(parts)); the limit is "
                    + "\(PipelineLimits.maximumJobsPerStep) jobs per step")
        }
        // Every reference must be defined by every combination (an `include` entry may
        // leave out a dimension). At most 256 combinations here.
        for value in parsed.templates where !value.template.references.isEmpty {
            for combination in parsed.combinations {
                if let missing = value.template.firstUndefined(in: combination.values) {
                    throw error(
                        value.node,
                        "`{{matrix.\(missing)}}` is not defined by the matrix combination "
                            + "(\(Self.excerpt(Self.describe(combination)))), which has \(Self.list(combination.pairs.map(\.name)))")
                }
            }
        }
        if matrixNode == nil, let group = parsed.group {
            try checkConcurrencyGroup(group.template.render([:]), group.node)
        }
        return parsed
    }

    /// A step's `name`/`label`, or a job's name after interpolation: at most
    /// `PipelineLimits.maximumNameBytes`, on one line.
    func checkName(_ text: String, _ node: Node, what: String) throws(PipelineError) {
        guard text.utf8.count <= PipelineLimits.maximumNameBytes else {
            throw error(node, "\(what) is \(text.utf8.count) bytes long; the limit is \(PipelineLimits.maximumNameBytes)")
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw error(node, "\(what) contains a control character (such as a newline): names are shown on one line")
        }
    }

    /// Splits a value into text and `{{matrix.NAME}}` references, or says where one is
    /// malformed.
    func templated(_ text: String, _ node: Node) throws(PipelineError) -> TemplatedValue {
        do {
            return TemplatedValue(template: try MatrixTemplate(parsing: text), node: node)
        } catch {
            throw self.error(
                node,
                "`\(Self.excerpt(error.excerpt))` is not a matrix reference: write `{{matrix.NAME}}` "
                    + "(NAME: ASCII letters, digits, `_` or `-`); other `{{…}}` text is kept as written")
        }
    }

    /// `os: linux, swift: 6.1`: a combination in messages.
    static func describe(_ combination: MatrixCombination) -> String {
        combination.pairs.map { "\($0.name): \($0.value)" }.joined(separator: ", ")
    }
}
