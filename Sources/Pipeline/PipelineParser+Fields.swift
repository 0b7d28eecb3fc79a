import Foundation
import Yams

/// The parsers of the keys that existed before the pipeline language: each takes the
/// node a key's value is written in and returns it validated, or the error pointing at it.
extension PipelineParser {
    /// `secrets: [NAME, ...]`: distinct valid secret names (`SecretName`), at most
    /// `PipelineLimits.maximumSecretsPerStep`. Only names; values never appear in a file.
    func secretNames(_ node: Node) throws(PipelineError) -> [String] {
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
    func deployEnvironment(_ node: Node) throws(PipelineError) -> String {
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

    /// `artifacts_from: ID`: a pipeline id, 1-128 ASCII letters, digits and `-` (the
    /// coordinator checks at submission that it names a pipeline).
    func pipelineReference(_ node: Node) throws(PipelineError) -> String {
        let text = try string(node, what: "artifacts_from")
        guard Self.isValidPipelineID(text) else {
            throw error(
                node, "`artifacts_from` must be a pipeline id (1-128 ASCII letters, digits or `-`), found `\(Self.excerpt(text))`")
        }
        return text
    }

    /// 1-128 ASCII letters, digits and `-`: what a pipeline id looks like.
    public static func isValidPipelineID(_ id: String) -> Bool {
        let bytes = id.utf8
        guard !bytes.isEmpty, bytes.count <= 128 else { return false }
        return bytes.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
        }
    }

    // MARK: - Scalars

    func scalarKey(_ node: Node) throws(PipelineError) -> String {
        guard let scalar = node.scalar else { throw error(node, "mapping keys must be plain strings") }
        return scalar.string
    }

    func string(_ node: Node, what: String) throws(PipelineError) -> String {
        guard let scalar = node.scalar else { throw error(node, "`\(what)` must be a string, found \(describe(node))") }
        return scalar.string
    }

    func commandList(_ node: Node) throws(PipelineError) -> [String] {
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

    func checkCommand(_ command: String, _ node: Node) throws(PipelineError) {
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
    func dependencies(_ node: Node) throws(PipelineError) -> [String] {
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
    func environment(_ node: Node) throws(PipelineError) -> [String: String] {
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
    func agentSelector(_ node: Node) throws(PipelineError) -> [String: String] {
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

    func stringList(_ node: Node, what: String) throws(PipelineError) -> [String] {
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

    func stringMap(_ node: Node, what: String) throws(PipelineError) -> [String: String] {
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
    func duration(_ node: Node, what: String, maximum: Int) throws(PipelineError) -> Int {
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
    func retryRules(_ node: Node) throws(PipelineError) -> [RetryRule] {
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
}
