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
    public static let stepKeys: Set<String> = [
        "key", "name", "label", "command", "commands", "env", "agents", "timeout", "cancel_grace", "depends_on", "retry",
        "secrets", "environment",
    ]
    /// Longest accepted `retry` limit: retries are for flakes, not loops.
    public static let maximumRetryLimit = 10
    public static let topLevelKeys: Set<String> = ["steps", "env"]

    public var file: String

    public init(file: String = "pipeline.yml") {
        self.file = file
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
        for (keyNode, value) in top {
            let key = try scalarKey(keyNode)
            switch key {
            case "steps": stepsNode = value
            case "env": env = try environment(value)
            default:
                throw error(keyNode, "unknown top-level key `\(Self.excerpt(key))`: expected one of \(Self.topLevelKeys.sorted().joined(separator: ", "))")
            }
        }
        guard let stepsNode else { throw error(root, "missing `steps:`: a pipeline needs at least one step") }
        guard let sequence = stepsNode.sequence else {
            throw error(stepsNode, "`steps` must be a list of steps, found \(describe(stepsNode))")
        }
        guard !sequence.isEmpty else { throw error(stepsNode, "`steps` is empty: a pipeline needs at least one step") }
        guard sequence.count <= PipelineLimits.maximumSteps else {
            throw error(
                stepsNode,
                "the pipeline has \(sequence.count) steps; the limit is \(PipelineLimits.maximumSteps): split it into several pipelines")
        }

        var steps: [PipelineDefinition.Step] = []
        var keyNodes: [String: Node] = [:]
        var dependencyNodes: [String: Node] = [:]
        for (index, stepNode) in sequence.enumerated() {
            let step = try parseStep(stepNode, index: index)
            if keyNodes[step.key] != nil {
                throw error(stepNode, "duplicate step key `\(step.key)`: keys must be unique")
            }
            keyNodes[step.key] = stepNode
            dependencyNodes[step.key] = stepNode["depends_on"] ?? stepNode
            steps.append(step)
        }
        for step in steps {
            for dependency in step.dependsOn where keyNodes[dependency] == nil {
                throw error(
                    dependencyNodes[step.key],
                    "step `\(step.key)` depends on `\(Self.excerpt(dependency))`, which is not a step key (known: \(Self.list(steps.map(\.key))))")
            }
            if step.dependsOn.contains(step.key) {
                throw error(dependencyNodes[step.key], "step `\(step.key)` depends on itself")
            }
        }
        if let cycle = Self.findCycle(steps) {
            throw error(dependencyNodes[cycle[0]], "dependency cycle: \(cycle.joined(separator: " → "))")
        }
        for (index, step) in steps.enumerated() {
            if let clash = step.secrets.first(where: { env[$0] != nil }) {
                throw error(
                    sequence[index]["secrets"] ?? sequence[index],
                    "`\(clash)` is both in the pipeline's `env` and in step `\(step.key)`'s `secrets`: "
                        + "a secret must come from the vault only, remove it from `env`")
            }
        }
        var totalBytes = 0
        for (index, step) in steps.enumerated() {
            let stepBytes = step.storedBytes(inheriting: env)
            guard stepBytes <= PipelineLimits.maximumStepBytes else {
                throw error(
                    sequence[index],
                    "step `\(step.key)` carries \(stepBytes) bytes of commands, environment (including the pipeline's `env`) "
                        + "and labels; the limit is \(Self.bytes(PipelineLimits.maximumStepBytes)): move long scripts into the repository")
            }
            totalBytes += stepBytes
            guard totalBytes <= PipelineLimits.maximumExpandedBytes else {
                throw error(
                    sequence[index],
                    "the steps up to `\(step.key)` carry more than \(Self.bytes(PipelineLimits.maximumExpandedBytes)) "
                        + "(each step counts the pipeline's `env` again): make the pipeline-level `env` smaller, "
                        + "move long scripts into the repository, or split the pipeline")
            }
        }
        return PipelineDefinition(env: env, steps: steps)
    }

    private func parseStep(_ node: Node, index: Int) throws(PipelineError) -> PipelineDefinition.Step {
        guard let mapping = node.mapping else {
            throw error(node, "step \(index + 1) must be a mapping with at least `command`, found \(describe(node))")
        }
        var key: String?
        var name: String?
        var commands: [String]?
        var env: [String: String] = [:]
        var agents: [String: String] = [:]
        var timeout: Int?
        var cancelGrace = 10
        var dependsOn: [String] = []
        var retry = RetryRule.defaults
        var secrets: [String] = []
        var secretsLocation: PipelineDefinition.Location?
        var environmentName: String?
        for (keyNode, value) in mapping {
            let field = try scalarKey(keyNode)
            switch field {
            case "key":
                let text = try string(value, what: "key")
                guard text.utf8.count <= PipelineLimits.maximumKeyLength else {
                    throw error(value, "step key is \(text.utf8.count) characters long; the limit is \(PipelineLimits.maximumKeyLength)")
                }
                guard Self.isValidKey(text) else {
                    throw error(
                        value,
                        "step key `\(Self.excerpt(text))` may contain only letters, digits, `-`, `_` and `.`, and may not start with `.`")
                }
                key = text
            case "name", "label":
                let text = try string(value, what: field)
                guard text.utf8.count <= PipelineLimits.maximumNameBytes else {
                    throw error(value, "`\(field)` is \(text.utf8.count) bytes long; the limit is \(PipelineLimits.maximumNameBytes)")
                }
                guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                    throw error(value, "`\(field)` contains a control character (such as a newline): names are shown on one line")
                }
                name = text
            case "command", "commands": commands = try commandList(value)
            case "env": env = try environment(value)
            case "agents": agents = try agentSelector(value)
            case "timeout": timeout = try duration(value, what: "timeout", maximum: PipelineLimits.maximumTimeoutSeconds)
            case "cancel_grace":
                cancelGrace = try duration(value, what: "cancel_grace", maximum: PipelineLimits.maximumCancelGraceSeconds)
            case "retry": retry = try retryRules(value)
            case "depends_on": dependsOn = try dependencies(value)
            case "secrets":
                secrets = try secretNames(value)
                secretsLocation = value.mark.map { .init(line: $0.line, column: $0.column) }
            case "environment": environmentName = try deployEnvironment(value)
            default:
                throw error(keyNode, "unknown step key `\(Self.excerpt(field))`: expected one of \(Self.stepKeys.sorted().joined(separator: ", "))")
            }
        }
        guard let commands else { throw error(node, "step \(index + 1) has no `command`") }
        if let clash = secrets.first(where: { env[$0] != nil }) {
            throw error(
                node["secrets"] ?? node,
                "`\(clash)` is both in the step's `env` and in its `secrets`: a secret must come from the vault only, "
                    + "remove it from `env`")
        }
        let resolvedKey = key ?? "step-\(index + 1)"
        var step = PipelineDefinition.Step(
            key: resolvedKey, name: name ?? resolvedKey, commands: commands, env: env, agents: agents,
            timeoutSeconds: timeout, cancelGraceSeconds: cancelGrace, dependsOn: dependsOn, retry: retry,
            secrets: secrets, secretsLocation: secretsLocation, environment: environmentName)
        step.jobs = [.init(name: step.name, commands: commands, env: env, agents: agents)]
        return step
    }

    /// `secrets: [NAME, ...]`: distinct valid secret names (`SecretName`), at most
    /// `PipelineLimits.maximumSecretsPerStep`. Only names; values never appear in a file.
    private func secretNames(_ node: Node) throws(PipelineError) -> [String] {
        guard let sequence = node.sequence else {
            throw error(node, "`secrets` must be a list of secret names such as `[DEPLOY_TOKEN]`, found \(describe(node))")
        }
        guard sequence.count <= PipelineLimits.maximumSecretsPerStep else {
            throw error(
                node, "the step names \(sequence.count) secrets; the limit is \(PipelineLimits.maximumSecretsPerStep)")
        }
        var names: [String] = []
        var seen: Set<String> = []
        for item in sequence {
            guard let scalar = item.scalar else {
                throw error(item, "each `secrets` entry must be a secret name, found \(describe(item))")
            }
            if let problem = SecretName.problem(scalar.string) { throw error(item, problem) }
            guard seen.insert(scalar.string).inserted else {
                throw error(item, "`secrets` names `\(scalar.string)` twice")
            }
            names.append(scalar.string)
        }
        return names
    }

    /// `environment: NAME`: 1-63 ASCII letters, digits, `.`, `_` and `-`. It appears in
    /// scopes (`environment:NAME`), role bindings and log lines, so it stays a plain token.
    private func deployEnvironment(_ node: Node) throws(PipelineError) -> String {
        let text = try string(node, what: "environment")
        guard Self.isValidEnvironmentName(text) else {
            throw error(
                node,
                "`environment` must be 1-\(PipelineLimits.maximumDeployEnvironmentBytes) ASCII letters, digits, `.`, `_` or `-`, "
                    + "found `\(Self.excerpt(text))`")
        }
        return text
    }

    /// 1-63 ASCII letters, digits, `.`, `_` and `-`: a deployment environment's name.
    public static func isValidEnvironmentName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= PipelineLimits.maximumDeployEnvironmentBytes else { return false }
        return bytes.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }

    // MARK: - Scalars

    private func scalarKey(_ node: Node) throws(PipelineError) -> String {
        guard let scalar = node.scalar else { throw error(node, "mapping keys must be plain strings") }
        return scalar.string
    }

    private func string(_ node: Node, what: String) throws(PipelineError) -> String {
        guard let scalar = node.scalar else { throw error(node, "`\(what)` must be a string, found \(describe(node))") }
        return scalar.string
    }

    private func commandList(_ node: Node) throws(PipelineError) -> [String] {
        if let scalar = node.scalar {
            guard !scalar.string.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw error(node, "`command` is empty")
            }
            try checkCommand(scalar.string, node)
            return [scalar.string]
        }
        let list = try stringList(node, what: "command")
        guard !list.isEmpty else { throw error(node, "`command` is an empty list") }
        guard list.count <= PipelineLimits.maximumCommands else {
            throw error(
                node,
                "the step has \(list.count) commands; the limit is \(PipelineLimits.maximumCommands): "
                    + "move them into a script in the repository and run that")
        }
        for (command, item) in zip(list, node.sequence ?? []) { try checkCommand(command, item) }
        return list
    }

    private func checkCommand(_ command: String, _ node: Node) throws(PipelineError) {
        guard command.utf8.count <= PipelineLimits.maximumCommandBytes else {
            throw error(
                node,
                "a command is \(command.utf8.count) bytes long; the limit is \(Self.bytes(PipelineLimits.maximumCommandBytes)) "
                    + "(the system refuses longer arguments): move it into a script in the repository")
        }
        guard !command.utf8.contains(0) else {
            throw error(node, "a command contains a NUL character, which no process argument can hold")
        }
    }

    /// `depends_on`: a string or a list of distinct strings.
    private func dependencies(_ node: Node) throws(PipelineError) -> [String] {
        let list = try stringList(node, what: "depends_on")
        guard list.count <= PipelineLimits.maximumDependencies else {
            throw error(
                node,
                "the step depends on \(list.count) steps; the limit is \(PipelineLimits.maximumDependencies): "
                    + "make it depend on one step that depends on the others")
        }
        var seen: Set<String> = []
        for key in list where !seen.insert(key).inserted {
            throw error(node, "`depends_on` names `\(Self.excerpt(key))` twice")
        }
        return list
    }

    /// An `env` mapping (top level or step): names and values as the process will get them.
    private func environment(_ node: Node) throws(PipelineError) -> [String: String] {
        let map = try stringMap(node, what: "env")
        guard map.count <= PipelineLimits.maximumEnvironmentEntries else {
            throw error(node, "`env` has \(map.count) entries; the limit is \(PipelineLimits.maximumEnvironmentEntries)")
        }
        for (name, value) in map.sorted(by: { $0.key < $1.key }) {
            var location: Node { Self.keyNode(name, in: node) }
            guard !name.isEmpty, !name.utf8.contains(UInt8(ascii: "=")), !name.utf8.contains(0) else {
                throw error(location, "environment variable name `\(Self.excerpt(name))` is empty or contains `=` or NUL, which a process environment cannot hold")
            }
            guard name.utf8.count <= PipelineLimits.maximumEnvironmentNameBytes else {
                throw error(location, "environment variable name is \(name.utf8.count) bytes long; the limit is \(PipelineLimits.maximumEnvironmentNameBytes)")
            }
            guard value.utf8.count <= PipelineLimits.maximumEnvironmentValueBytes else {
                throw error(
                    location,
                    "`env.\(Self.excerpt(name))` is \(value.utf8.count) bytes long; the limit is \(Self.bytes(PipelineLimits.maximumEnvironmentValueBytes)): "
                        + "put large data in a file in the repository")
            }
            guard !value.utf8.contains(0) else {
                throw error(location, "`env.\(Self.excerpt(name))` contains a NUL character, which a process environment cannot hold")
            }
        }
        return map
    }

    /// `agents`: the labels a step needs, within the bounds of what an agent can announce.
    private func agentSelector(_ node: Node) throws(PipelineError) -> [String: String] {
        let map = try stringMap(node, what: "agents")
        guard map.count <= PipelineLimits.maximumAgentLabels else {
            throw error(node, "`agents` has \(map.count) labels; an agent announces at most \(PipelineLimits.maximumAgentLabels)")
        }
        for (label, value) in map.sorted(by: { $0.key < $1.key }) {
            guard label.utf8.count <= PipelineLimits.maximumAgentLabelKeyBytes,
                value.utf8.count <= PipelineLimits.maximumAgentLabelValueBytes
            else {
                throw error(
                    Self.keyNode(label, in: node),
                    "the label `agents.\(Self.excerpt(label))` is too long: agent labels have at most \(PipelineLimits.maximumAgentLabelKeyBytes) "
                        + "bytes of name and \(PipelineLimits.maximumAgentLabelValueBytes) of value, so no agent could match it")
            }
        }
        return map
    }

    private func stringList(_ node: Node, what: String) throws(PipelineError) -> [String] {
        if let scalar = node.scalar { return [scalar.string] }
        guard let sequence = node.sequence else {
            throw error(node, "`\(what)` must be a string or a list of strings, found \(describe(node))")
        }
        var result: [String] = []
        for item in sequence {
            guard let scalar = item.scalar else {
                throw error(item, "each `\(what)` entry must be a string, found \(describe(item))")
            }
            result.append(scalar.string)
        }
        return result
    }

    private func stringMap(_ node: Node, what: String) throws(PipelineError) -> [String: String] {
        guard let mapping = node.mapping else {
            throw error(node, "`\(what)` must be a mapping of names to strings, found \(describe(node))")
        }
        var result: [String: String] = [:]
        for (keyNode, value) in mapping {
            let key = try scalarKey(keyNode)
            guard let scalar = value.scalar else {
                throw error(value, "`\(what).\(Self.excerpt(key))` must be a string, found \(describe(value))")
            }
            result[key] = scalar.string
        }
        return result
    }

    /// `90`, `90s`, `15m`, `2h` or `1h30m` → seconds, from 1 to `maximum`.
    private func duration(_ node: Node, what: String, maximum: Int) throws(PipelineError) -> Int {
        let expected = "`\(what)` must be a positive duration such as `90`, `90s`, `15m` or `1h30m`"
        guard let scalar = node.scalar else { throw error(node, "\(expected), found \(describe(node))") }
        let seconds: Int
        do {
            seconds = try DurationParser.seconds(scalar.string)
        } catch {
            throw self.error(node, "\(expected): \(error)")
        }
        guard seconds > 0 else { throw error(node, "\(expected): it is zero") }
        guard seconds <= maximum else {
            throw error(
                node,
                "`\(what)` is \(seconds) s; the longest allowed is \(maximum) s (\(Self.hours(maximum)))")
        }
        return seconds
    }

    /// `retry: {automatic: [{reason: agent_lost, limit: 2}, {exit_status: 75, limit: 1}]}`;
    /// `exit_status: "*"` matches any failure; `automatic: false` disables retries.
    private func retryRules(_ node: Node) throws(PipelineError) -> [RetryRule] {
        guard let mapping = node.mapping else {
            throw error(node, "`retry` must be a mapping such as `{automatic: [{reason: agent_lost, limit: 2}]}`")
        }
        var rules: [RetryRule] = []
        for (keyNode, value) in mapping {
            guard try scalarKey(keyNode) == "automatic" else {
                throw error(keyNode, "unknown `retry` key `\(Self.excerpt(keyNode.scalar?.string ?? ""))`: expected `automatic`")
            }
            if let flag = value.scalar?.string, ["false", "no", "off"].contains(flag) { return [] }
            guard let entries = value.sequence else {
                throw error(value, "`retry.automatic` must be a list of rules or `false`")
            }
            guard entries.count <= PipelineLimits.maximumRetryRules else {
                throw error(value, "`retry.automatic` has \(entries.count) rules; the limit is \(PipelineLimits.maximumRetryRules)")
            }
            for entry in entries {
                guard let fields = entry.mapping else {
                    throw error(entry, "each `retry.automatic` rule must be a mapping such as `{exit_status: 75, limit: 1}`")
                }
                var condition: RetryRule.Condition?
                var limit = 1
                for (fieldNode, fieldValue) in fields {
                    switch try scalarKey(fieldNode) {
                    case "reason":
                        guard fieldValue.scalar?.string == "agent_lost" else {
                            throw error(fieldValue, "the only retry `reason` is `agent_lost`; use `exit_status` for failures")
                        }
                        condition = .agentLost
                    case "exit_status":
                        let text = fieldValue.scalar?.string ?? ""
                        if text == "*" {
                            condition = .anyExitStatus
                        } else if let status = Int(text), (1...255).contains(status) {
                            condition = .exitStatus(status)
                        } else {
                            throw error(fieldValue, "`exit_status` must be 1-255 or \"*\"")
                        }
                    case "limit":
                        guard let value = fieldValue.scalar.flatMap({ Int($0.string) }), (0...Self.maximumRetryLimit).contains(value)
                        else {
                            throw error(fieldValue, "`limit` must be a whole number from 0 to \(Self.maximumRetryLimit)")
                        }
                        limit = value
                    default:
                        throw error(fieldNode, "unknown retry rule key `\(Self.excerpt(fieldNode.scalar?.string ?? ""))`: expected reason, exit_status or limit")
                    }
                }
                guard let condition else {
                    throw error(entry, "a retry rule needs `reason: agent_lost` or `exit_status: N`")
                }
                rules.append(RetryRule(condition, limit: limit))
            }
        }
        return rules
    }

    /// Seconds for a duration text, or nil if it is not one (see `DurationParser`, which
    /// says why). Never traps, whatever the text.
    public static func parseDuration(_ text: String) -> Int? {
        try? DurationParser.seconds(text)
    }

    /// 1-100 ASCII letters, digits, `-`, `_` and `.`, not starting with `.`: keys name
    /// steps in `depends_on`, in the API and in `GANTRY_STEP`, and `.`, `..` or `.x` would
    /// read as paths wherever one is used to name a file or directory.
    public static func isValidKey(_ key: String) -> Bool {
        guard let first = key.utf8.first, first != UInt8(ascii: "."), key.utf8.count <= PipelineLimits.maximumKeyLength else {
            return false
        }
        return key.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0))
        }
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

    // MARK: - Errors

    private func error(_ node: Node?, _ message: String) -> PipelineError {
        PipelineError(file: file, line: node?.mark.map { $0.line }, column: node?.mark.map { $0.column }, message: message)
    }

    private func yamlError(_ error: YamlError) -> PipelineError {
        switch error {
        case .scanner(let context, let problem, let mark, _):
            return PipelineError(file: file, line: mark.line, column: mark.column, message: "invalid YAML: \(problem)\(context.map { " \($0.text)" } ?? "")")
        case .parser(let context, let problem, let mark, _):
            return PipelineError(file: file, line: mark.line, column: mark.column, message: "invalid YAML: \(problem)\(context.map { " \($0.text)" } ?? "")")
        case .composer(let context, let problem, let mark, _):
            return PipelineError(file: file, line: mark.line, column: mark.column, message: "invalid YAML: \(problem)\(context.map { " \($0.text)" } ?? "")")
        case .reader(let problem, let offset, _, let yaml):
            // libyaml counts the offset in bytes of the UTF-8 input.
            let prefix = offset.map { yaml.utf8.prefix(max(0, $0)) }
            let line = prefix.map { $0.count(where: { $0 == UInt8(ascii: "\n") }) + 1 }
            let column = prefix.map { bytes in (String(decoding: bytes.reversed().prefix { $0 != UInt8(ascii: "\n") }.reversed(), as: UTF8.self)).count + 1 }
            return PipelineError(file: file, line: line, column: column, message: "invalid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return PipelineError(
                file: file, line: context.mark.line, column: context.mark.column,
                message: "duplicate key \(duplicates.sorted().prefix(5).map { "`\(Self.excerpt($0))`" }.joined(separator: ", ")) in one mapping: each key may appear once")
        default:
            return PipelineError(file: file, line: nil, column: nil, message: "invalid YAML: \(error)")
        }
    }

    /// Where `key` is written in `mapping`, to point an error at it (or the mapping).
    private static func keyNode(_ key: String, in mapping: Node) -> Node {
        mapping.mapping?.first(where: { $0.key.scalar?.string == key })?.key ?? mapping
    }

    /// User text quoted in a message: at most 60 characters, on one line, so a hostile file
    /// cannot make an error message (or the log line that records it) huge or multi-line.
    static func excerpt(_ text: String) -> String {
        let head = text.unicodeScalars.prefix(60).map { $0.escaped(asASCII: false) }.joined()
        return text.unicodeScalars.count > 60 ? head + "…" : head
    }

    /// Step keys listed in a message: the first 20, then how many more.
    static func list(_ keys: [String]) -> String {
        keys.count <= 20 ? keys.joined(separator: ", ") : keys.prefix(20).joined(separator: ", ") + " and \(keys.count - 20) more"
    }

    /// `1 MiB`, `64 KiB`: how limits are written in messages.
    private static func bytes(_ count: Int) -> String {
        count % (1024 * 1024) == 0 ? "\(count / (1024 * 1024)) MiB" : count % 1024 == 0 ? "\(count / 1024) KiB" : "\(count) bytes"
    }

    /// `7 days`, `1 hour`: how duration limits are written in messages.
    private static func hours(_ seconds: Int) -> String {
        if seconds % 86400 == 0 { return seconds == 86400 ? "1 day" : "\(seconds / 86400) days" }
        if seconds % 3600 == 0 { return seconds == 3600 ? "1 hour" : "\(seconds / 3600) hours" }
        return "\(seconds) s"
    }

    private func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return "the scalar `\(Self.excerpt(scalar.string))`"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }
}

import Foundation
