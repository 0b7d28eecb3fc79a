import Yams

/// `block:` steps, Buildkite's approval gates (docs/pipeline.md, "Approval gates: block"):
/// a step that runs no command and waits for `gantry approve` or `gantry reject`. It takes
/// part in `depends_on`, `wait` and stages like any step, and becomes one job that no agent
/// ever runs.
extension PipelineParser {
    /// The keys a block step may have. Every other step key is refused there, with a
    /// message saying a block runs no command.
    public static let blockStepKeys: Set<String> = [
        "block", "key", "name", "label", "depends_on", "if", "allowed", "fields", "stage",
    ]
    /// The roles `allowed.roles` may name (`deployer` also as `deployer:ENV+ENV`).
    public static let blockRoles = ["viewer", "developer", "deployer", "admin"]
    static let blockFieldKeys = ["key", "text", "select", "required", "options", "default"]

    /// Whether a `steps:` entry is a block step: a mapping with the key `block`.
    static func isBlockStep(_ node: Node) -> Bool {
        node.mapping?.contains(where: { $0.key.scalar?.string == "block" }) ?? false
    }

    /// A block step. `ordinal` is its 1-based position among the steps, as for any step:
    /// the default key is `block-N`, numbered like `step-N`.
    func parseBlockStep(_ node: Node, ordinal: Int) throws(PipelineError) -> ParsedStep {
        guard let mapping = node.mapping else {
            throw error(node, "step \(ordinal) must be a mapping, found \(describe(node))")
        }
        var prompt = ""
        var key: String?
        var name: String?
        var nameNode: Node?
        var dependsOn: [String] = []
        var condition: StepCondition?
        var stage: String?
        var stageNode: Node?
        var fields: [BlockField] = []
        var roles: [String] = []
        var identities: [String] = []
        for (keyNode, value) in mapping {
            let field = try scalarKey(keyNode)
            switch field {
            case "block": prompt = try blockPrompt(value, keyNode: keyNode)
            case "key": key = try stepKey(value)
            case "name", "label":
                let text = try string(value, what: field)
                try checkName(text, value, what: "`\(field)`")
                name = text
                nameNode = value
            case "depends_on": dependsOn = try dependencies(value)
            case "if": condition = try self.condition(value)
            case "stage":
                stage = try stageName(value, what: "stage")
                stageNode = value
            case "fields": fields = try blockFields(value)
            case "allowed": (roles, identities) = try blockAllowed(value)
            default:
                let allowedKeys = Self.blockStepKeys.sorted().joined(separator: ", ")
                if Self.stepKeys.contains(field) {
                    throw error(
                        keyNode,
                        "`\(field)` is not allowed on a block step: a block runs no command, it waits for "
                            + "`gantry approve` or `gantry reject`; it may have only \(allowedKeys) "
                            + "(put `\(field)` on the step that depends on the block)")
                }
                throw error(keyNode, "unknown block step key `\(Self.excerpt(field))`: expected one of \(allowedKeys)")
            }
        }
        let resolvedKey = key ?? "\(upload?.defaultKeyPrefix ?? "")block-\(ordinal)"
        var parsed = ParsedStep(
            step: PipelineDefinition.Step(
                key: resolvedKey, name: name ?? prompt, commands: [], env: [:], agents: [:],
                timeoutSeconds: nil, cancelGraceSeconds: 10, dependsOn: dependsOn, retry: []),
            node: node, dependsOnNode: node["depends_on"], whenNode: nil, stage: stage, stageNode: stageNode,
            matrixNode: nil, parallelismNode: nil, combinations: [],
            name: nil, commands: [], env: [], agents: [], group: nil, jobCount: 1)
        if let name, let nameNode {
            // A block has no matrix, so a `{{matrix.NAME}}` in its name could never be filled.
            let value = try templated(name, nameNode)
            if let reference = value.template.references.first {
                throw error(
                    nameNode,
                    "`{{matrix.\(reference)}}` is used, but block step `\(resolvedKey)` has no `matrix:` (a block cannot have one): "
                        + "write the value out")
            }
            parsed.name = value
        }
        parsed.step.condition = condition
        parsed.step.block = BlockStep(prompt: prompt, fields: fields, roles: roles, identities: identities)
        return parsed
    }

    /// A step's `key:` (any step, block or not): a valid, not too long identifier.
    func stepKey(_ value: Node) throws(PipelineError) -> String {
        let text = try string(value, what: "key")
        guard text.utf8.count <= PipelineLimits.maximumKeyLength else {
            throw error(value, "step key is \(text.utf8.count) characters long; the limit is \(PipelineLimits.maximumKeyLength)")
        }
        guard Self.isValidKey(text) else {
            throw error(
                value,
                "step key `\(Self.excerpt(text))` may contain only letters, digits, `-`, `_` and `.`, and may not start with `.`")
        }
        return text
    }

    // MARK: - The prompt

    /// `block: "Deploy to production?"`: a non-empty question on one line. An empty one is
    /// reported at the `block` key, since an empty value has no place of its own.
    private func blockPrompt(_ node: Node, keyNode: Node) throws(PipelineError) -> String {
        let expected = "`block` must be the question the approver is asked, such as `block: \"Deploy to production?\"`"
        guard let scalar = node.scalar else { throw error(node, "\(expected), found \(describe(node))") }
        let text = scalar.string
        let isNull = scalar.style == .plain && ["~", "null", "Null", "NULL"].contains(text)
        guard !isNull, text.contains(where: { !$0.isWhitespace }) else { throw error(keyNode, "`block` is empty: \(expected)") }
        try checkOneLine(text, node, what: "`block`", limit: PipelineLimits.maximumBlockPromptBytes, shownAs: "the prompt")
        return text
    }

    /// A display string: at most `limit` bytes, without control characters.
    private func checkOneLine(_ text: String, _ node: Node, what: String, limit: Int, shownAs: String) throws(PipelineError) {
        guard text.utf8.count <= limit else {
            throw error(node, "\(what) is \(text.utf8.count) bytes long; the limit is \(limit)")
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw error(node, "\(what) contains a control character (such as a newline): \(shownAs) is shown on one line")
        }
    }

    // MARK: - Fields

    /// `fields: [{key:, text: | select:, required:, options:, default:}, ...]`.
    private func blockFields(_ node: Node) throws(PipelineError) -> [BlockField] {
        let expected = "`fields` must be a list of fields such as `[{key: release-notes, text: \"Release notes\"}]`"
        guard let items = node.sequence else { throw error(node, "\(expected), found \(describe(node))") }
        guard !items.isEmpty else { throw error(node, "`fields` is empty: list at least one field, or leave `fields` out") }
        guard items.count <= PipelineLimits.maximumBlockFields else {
            throw error(
                node,
                "the block has \(items.count) fields; the limit is \(PipelineLimits.maximumBlockFields): "
                    + "ask for less, or put the rest in a file in the repository")
        }
        var fields: [BlockField] = []
        for item in items {
            let field = try blockField(item)
            if fields.contains(where: { $0.key == field.key }) {
                throw error(item["key"] ?? item, "the block has two fields with the key `\(field.key)`: each field is a meta-data key of its own")
            }
            fields.append(field)
        }
        return fields
    }

    private func blockField(_ node: Node) throws(PipelineError) -> BlockField {
        guard let mapping = node.mapping else {
            throw error(
                node,
                "each entry of `fields` must be a mapping such as `{key: channel, select: \"Channel\", options: [stable, beta]}`, "
                    + "found \(describe(node))")
        }
        var key: String?
        var label: String?
        var labelKind: String?
        var required = false
        var options: [String]?
        var optionsKeyNode: Node?
        var defaultValue: String?
        var defaultNode: Node?
        for (keyNode, value) in mapping {
            let name = try scalarKey(keyNode)
            switch name {
            case "key":
                let text = try string(value, what: "fields.key")
                guard Self.isValidMetaDataKey(text) else {
                    throw error(
                        value,
                        "a field's `key` is a meta-data key: 1-\(PipelineLimits.maximumBlockFieldKeyBytes) bytes of ASCII letters, "
                            + "digits and `_ . : / -`, found `\(Self.excerpt(text))`")
                }
                key = text
            case "text", "select":
                if let labelKind {
                    throw error(
                        keyNode,
                        "a field has both `\(labelKind)` and `\(name)`: write `text: LABEL` for free text or "
                            + "`select: LABEL` with `options` for a choice, not both")
                }
                let text = try string(value, what: "fields.\(name)")
                guard !text.isEmpty else { throw error(value, "`\(name)` is empty: write the label the approver sees") }
                try checkOneLine(
                    text, value, what: "`\(name)`", limit: PipelineLimits.maximumBlockFieldLabelBytes, shownAs: "a field's label")
                label = text
                labelKind = name
            case "required":
                guard let flag = Self.boolean(value) else {
                    throw error(value, "`required` must be `true` or `false`, found \(describe(value))")
                }
                required = flag
            case "options":
                options = try blockOptions(value)
                optionsKeyNode = keyNode
            case "default":
                guard let scalar = value.scalar else {
                    throw error(value, "`default` must be a string, found \(describe(value))")
                }
                defaultValue = scalar.string
                defaultNode = value
            default:
                throw error(
                    keyNode,
                    "unknown field key `\(Self.excerpt(name))`: expected one of \(Self.blockFieldKeys.joined(separator: ", "))")
            }
        }
        guard let key else {
            throw error(node, "a field needs a `key`: the meta-data key its value is stored under, such as `key: channel`")
        }
        guard let label, let labelKind else {
            throw error(
                node, "field `\(key)` needs `text: LABEL` (free text) or `select: LABEL` with `options` (a choice)")
        }
        if labelKind == "select" {
            guard let options else {
                throw error(
                    Self.keyNode("select", in: node),
                    "`select` field `\(key)` needs `options`: the values the approver chooses from, such as `[stable, beta]`")
            }
            if let defaultValue, let defaultNode, !options.contains(defaultValue) {
                throw error(
                    defaultNode,
                    "the `default` of `select` field `\(key)` is `\(Self.excerpt(defaultValue))`, which is not one of its options "
                        + "(\(Self.excerpt(options.joined(separator: ", "))))")
            }
        } else {
            if let optionsKeyNode {
                throw error(
                    optionsKeyNode,
                    "`options` is only for `select` fields: field `\(key)` is `text`; write `select: LABEL` for a choice")
            }
            if let defaultValue, let defaultNode {
                guard defaultValue.utf8.count <= PipelineLimits.maximumBlockFieldDefaultBytes else {
                    throw error(
                        defaultNode,
                        "the `default` of field `\(key)` is \(defaultValue.utf8.count) bytes long; the limit is "
                            + "\(Self.bytes(PipelineLimits.maximumBlockFieldDefaultBytes)), that of a meta-data value")
                }
                guard !defaultValue.utf8.contains(0) else {
                    throw error(defaultNode, "the `default` of field `\(key)` contains a NUL character, which meta-data cannot hold")
                }
            }
        }
        return BlockField(key: key, label: label, required: required, options: options ?? [], defaultValue: defaultValue)
    }

    /// A `select` field's `options`: 1-50 distinct values of at most 256 bytes on one line.
    private func blockOptions(_ node: Node) throws(PipelineError) -> [String] {
        let maximum = PipelineLimits.maximumBlockFieldOptions
        guard let items = node.sequence else {
            throw error(node, "`options` must be a list of values such as `[stable, beta]`, found \(describe(node))")
        }
        guard (1...maximum).contains(items.count) else {
            throw error(node, "`options` lists \(items.count) values; a `select` field has 1 to \(maximum)")
        }
        var options: [String] = []
        for item in items {
            guard let scalar = item.scalar else {
                throw error(item, "each `options` entry must be a string, found \(describe(item))")
            }
            let text = scalar.string
            try checkOneLine(
                text, item, what: "the option `\(Self.excerpt(text))`", limit: PipelineLimits.maximumBlockFieldOptionBytes,
                shownAs: "an option")
            guard !options.contains(text) else { throw error(item, "`options` lists `\(Self.excerpt(text))` twice") }
            options.append(text)
        }
        return options
    }

    /// 1-255 bytes of ASCII letters, digits and `_ . : / -`: the meta-data API's keys.
    public static func isValidMetaDataKey(_ key: String) -> Bool {
        let bytes = key.utf8
        guard !bytes.isEmpty, bytes.count <= PipelineLimits.maximumBlockFieldKeyBytes else { return false }
        return bytes.allSatisfy { byte in
            isIdentifierByte(byte) || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "/")
        }
    }

    /// ASCII letters, digits, `.`, `_` and `-`.
    private static func isIdentifierByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
            || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }

    // MARK: - Who may decide

    /// `allowed: {roles: [...], identities: [...]}`: at least one of the two.
    private func blockAllowed(_ node: Node) throws(PipelineError) -> (roles: [String], identities: [String]) {
        guard let mapping = node.mapping else {
            throw error(
                node, "`allowed` must be a mapping such as `{roles: [deployer], identities: [alice]}`, found \(describe(node))")
        }
        var roles: [String] = []
        var identities: [String] = []
        for (keyNode, value) in mapping {
            switch try scalarKey(keyNode) {
            case "roles": roles = try blockRoleList(value)
            case "identities": identities = try blockIdentityList(value)
            default:
                throw error(
                    keyNode, "unknown `allowed` key `\(Self.excerpt(keyNode.scalar?.string ?? ""))`: expected roles or identities")
            }
        }
        guard !roles.isEmpty || !identities.isEmpty else {
            throw error(
                node,
                "`allowed` names no one: list `roles` and/or `identities`, or leave `allowed` out (then whoever may deploy decides)")
        }
        return (roles, identities)
    }

    private func blockRoleList(_ node: Node) throws(PipelineError) -> [String] {
        guard let items = node.sequence else {
            throw error(node, "`allowed.roles` must be a list of roles such as `[deployer]`, found \(describe(node))")
        }
        guard !items.isEmpty else { throw error(node, "`allowed.roles` is empty: list at least one role, or leave it out") }
        guard items.count <= PipelineLimits.maximumBlockRoles else {
            throw error(node, "`allowed.roles` lists \(items.count) roles; the limit is \(PipelineLimits.maximumBlockRoles)")
        }
        var roles: [String] = []
        for item in items {
            guard let scalar = item.scalar else {
                throw error(item, "each `allowed.roles` entry must be a role, found \(describe(item))")
            }
            let text = scalar.string
            guard Self.isValidBlockRole(text) else {
                throw error(
                    item,
                    "unknown role `\(Self.excerpt(text))` in `allowed.roles`: expected \(Self.blockRoles.joined(separator: ", ")), "
                        + "or deployer:ENV+ENV for a deployer limited to some environments")
            }
            guard !roles.contains(text) else { throw error(item, "`allowed.roles` names `\(Self.excerpt(text))` twice") }
            roles.append(text)
        }
        return roles
    }

    /// `viewer`, `developer`, `deployer`, `admin`, or `deployer:` and environment names
    /// joined by `+` (`deployer:production+staging`), as role bindings are written.
    public static func isValidBlockRole(_ role: String) -> Bool {
        if blockRoles.contains(role) { return true }
        guard role.hasPrefix("deployer:") else { return false }
        let names = role.dropFirst("deployer:".count).split(separator: "+", omittingEmptySubsequences: false)
        return (1...PipelineLimits.maximumBlockRoleEnvironments).contains(names.count)
            && names.allSatisfy { isValidEnvironmentName(String($0)) }
    }

    private func blockIdentityList(_ node: Node) throws(PipelineError) -> [String] {
        let maximum = PipelineLimits.maximumBlockIdentities
        guard let items = node.sequence else {
            throw error(node, "`allowed.identities` must be a list of identity names such as `[alice, bob]`, found \(describe(node))")
        }
        guard (1...maximum).contains(items.count) else {
            throw error(node, "`allowed.identities` lists \(items.count) identities; it takes 1 to \(maximum)")
        }
        var identities: [String] = []
        for item in items {
            guard let scalar = item.scalar else {
                throw error(item, "each `allowed.identities` entry must be an identity name, found \(describe(item))")
            }
            let text = scalar.string
            guard Self.isValidIdentityName(text) else {
                throw error(
                    item,
                    "`\(Self.excerpt(text))` in `allowed.identities` is not an identity name: 1-\(PipelineLimits.maximumIdentityNameBytes) "
                        + "bytes of ASCII letters, digits, `.`, `_` or `-`")
            }
            guard !identities.contains(text) else {
                throw error(item, "`allowed.identities` names `\(Self.excerpt(text))` twice")
            }
            identities.append(text)
        }
        return identities
    }

    /// 1-64 bytes of ASCII letters, digits, `.`, `_` and `-`: an identity's name.
    public static func isValidIdentityName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= PipelineLimits.maximumIdentityNameBytes else { return false }
        return bytes.allSatisfy(isIdentifierByte)
    }
}
