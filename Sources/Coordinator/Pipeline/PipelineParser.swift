import Yams

/// Parses pipeline YAML into a `PipelineDefinition`, rejecting anything it does not
/// understand with the file, line and column and what was expected.
///
/// The parser walks Yams' node tree rather than decoding into `Codable` types because
/// `Codable` loses source positions, and an error without a line number is the most
/// common complaint about CI configuration.
public struct PipelineParser: Sendable {
    public static let stepKeys: Set<String> = [
        "key", "name", "label", "command", "commands", "env", "agents", "timeout", "cancel_grace", "depends_on", "retry",
    ]
    /// Longest accepted `retry` limit: retries are for flakes, not loops.
    public static let maximumRetryLimit = 10
    public static let topLevelKeys: Set<String> = ["steps", "env"]

    public var file: String

    public init(file: String = "pipeline.yml") {
        self.file = file
    }

    public func parse(_ text: String) throws(PipelineError) -> PipelineDefinition {
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
            case "env": env = try stringMap(value, what: "env")
            default:
                throw error(keyNode, "unknown top-level key `\(key)`: expected one of \(Self.topLevelKeys.sorted().joined(separator: ", "))")
            }
        }
        guard let stepsNode else { throw error(root, "missing `steps:`: a pipeline needs at least one step") }
        guard let sequence = stepsNode.sequence else {
            throw error(stepsNode, "`steps` must be a list of steps, found \(describe(stepsNode))")
        }
        guard !sequence.isEmpty else { throw error(stepsNode, "`steps` is empty: a pipeline needs at least one step") }

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
                    "step `\(step.key)` depends on `\(dependency)`, which is not a step key (known: \(steps.map(\.key).joined(separator: ", ")))")
            }
            if step.dependsOn.contains(step.key) {
                throw error(dependencyNodes[step.key], "step `\(step.key)` depends on itself")
            }
        }
        if let cycle = Self.findCycle(steps) {
            throw error(dependencyNodes[cycle[0]], "dependency cycle: \(cycle.joined(separator: " → "))")
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
        for (keyNode, value) in mapping {
            let field = try scalarKey(keyNode)
            switch field {
            case "key":
                let text = try string(value, what: "key")
                guard Self.isValidKey(text) else {
                    throw error(value, "step key `\(text)` may contain only letters, digits, `-`, `_` and `.`")
                }
                key = text
            case "name", "label": name = try string(value, what: field)
            case "command", "commands": commands = try commandList(value)
            case "env": env = try stringMap(value, what: "env")
            case "agents": agents = try stringMap(value, what: "agents")
            case "timeout": timeout = try duration(value, what: "timeout")
            case "cancel_grace": cancelGrace = try duration(value, what: "cancel_grace")
            case "retry": retry = try retryRules(value)
            case "depends_on": dependsOn = try stringList(value, what: "depends_on")
            default:
                throw error(keyNode, "unknown step key `\(field)`: expected one of \(Self.stepKeys.sorted().joined(separator: ", "))")
            }
        }
        guard let commands else { throw error(node, "step \(index + 1) has no `command`") }
        let resolvedKey = key ?? "step-\(index + 1)"
        return PipelineDefinition.Step(
            key: resolvedKey, name: name ?? resolvedKey, commands: commands, env: env, agents: agents,
            timeoutSeconds: timeout, cancelGraceSeconds: cancelGrace, dependsOn: dependsOn, retry: retry)
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
            return [scalar.string]
        }
        let list = try stringList(node, what: "command")
        guard !list.isEmpty else { throw error(node, "`command` is an empty list") }
        return list
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
                throw error(value, "`\(what).\(key)` must be a string, found \(describe(value))")
            }
            result[key] = scalar.string
        }
        return result
    }

    /// `90`, `90s`, `15m`, `2h` or `1h30m` → seconds.
    private func duration(_ node: Node, what: String) throws(PipelineError) -> Int {
        guard let scalar = node.scalar, let seconds = Self.parseDuration(scalar.string), seconds > 0 else {
            throw error(node, "`\(what)` must be a positive duration such as `90`, `90s`, `15m` or `1h30m`")
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
                throw error(keyNode, "unknown `retry` key `\(keyNode.scalar?.string ?? "")`: expected `automatic`")
            }
            if let flag = value.scalar?.string, ["false", "no", "off"].contains(flag) { return [] }
            guard let entries = value.sequence else {
                throw error(value, "`retry.automatic` must be a list of rules or `false`")
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
                        throw error(fieldNode, "unknown retry rule key `\(fieldNode.scalar?.string ?? "")`: expected reason, exit_status or limit")
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

    static func parseDuration(_ text: String) -> Int? {
        if let plain = Int(text) { return plain }
        var total = 0
        var digits = ""
        for character in text {
            if character.isNumber {
                digits.append(character)
                continue
            }
            guard let value = Int(digits) else { return nil }
            switch character {
            case "s": total += value
            case "m": total += value * 60
            case "h": total += value * 3600
            default: return nil
            }
            digits = ""
        }
        return digits.isEmpty && total > 0 ? total : nil
    }

    static func isValidKey(_ key: String) -> Bool {
        !key.isEmpty && key.count <= 100
            && key.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
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
        case .duplicatedKeysInMapping(let duplicates, let context):
            return PipelineError(
                file: file, line: context.mark.line, column: context.mark.column,
                message: "duplicate key \(duplicates.sorted().map { "`\($0)`" }.joined(separator: ", ")) in one mapping: each key may appear once")
        default:
            return PipelineError(file: file, line: nil, column: nil, message: "invalid YAML: \(error)")
        }
    }

    private func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return "the scalar `\(scalar.string)`"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }
}

import Foundation
