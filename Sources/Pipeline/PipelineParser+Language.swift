import Yams

/// The step keys of the pipeline language that take one value each: `if`, `when`,
/// `soft_fail`, `priority`, `concurrency` and `parallelism` (docs/pipeline.md). `matrix`
/// is in `PipelineParser+Matrix.swift`, `wait` and `stage` in `PipelineParser+Stages.swift`.
extension PipelineParser {
    /// `if: EXPRESSION` as written, with where it is written.
    func condition(_ node: Node) throws(PipelineError) -> StepCondition {
        guard let scalar = node.scalar else {
            throw error(node, "`if` must be an expression such as `branch == \"main\"`, found \(describe(node))")
        }
        try checkCondition(scalar.string, node)
        return StepCondition(text: scalar.string, location: node.mark.map { .init(line: $0.line, column: $0.column) })
    }

    /// Every check of an `if:` expression at parse time, in one place so that the expression
    /// language's parser is called from here too: a condition that cannot be evaluated
    /// must be refused with the file's location, before anything is stored.
    func checkCondition(_ text: String, _ node: Node) throws(PipelineError) {
        guard text.utf8.count <= PipelineLimits.maximumConditionBytes else {
            throw error(
                node,
                "`if` is \(text.utf8.count) bytes long; the limit is \(Self.bytes(PipelineLimits.maximumConditionBytes)): "
                    + "a condition is a short expression, put longer logic in a command")
        }
        do {
            _ = try ConditionExpression(parsing: text)
        } catch {
            // Point at the offending character when the expression sits on one line after
            // the key (plain, or quoted: one more column for the quote); else at the value.
            guard let mark = node.mark, let scalar = node.scalar, !text.contains("\n") else {
                throw self.error(node, "`if`: \(error.message)")
            }
            let shift: Int
            switch scalar.style {
            case .plain: shift = 0
            case .singleQuoted, .doubleQuoted: shift = 1
            default:
                throw self.error(node, "`if`: \(error.message)")
            }
            throw PipelineError(
                file: file, line: mark.line, column: mark.column + shift + error.offset, message: "`if`: \(error.message)")
        }
    }

    /// `when: on_success | on_failure | always`.
    func runWhen(_ node: Node) throws(PipelineError) -> RunWhen {
        let expected = RunWhen.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", ")
        guard let scalar = node.scalar, let value = RunWhen(rawValue: scalar.string) else {
            throw error(node, "`when` must be one of \(expected), found \(describe(node))")
        }
        return value
    }

    /// `soft_fail: true | false`, or a list of exit statuses written as `1` or as
    /// Buildkite's `{exit_status: 1}`; `exit_status: "*"` (in either form) means any failure.
    func softFail(_ node: Node) throws(PipelineError) -> SoftFail {
        let expected = "`soft_fail` must be `true`, `false` or a list of exit statuses such as `[1, {exit_status: 75}]`"
        if node.scalar != nil {
            guard let flag = Self.boolean(node) else { throw error(node, "\(expected), found \(describe(node))") }
            return flag ? .always : .never
        }
        guard let entries = node.sequence else { throw error(node, "\(expected), found \(describe(node))") }
        guard entries.count <= 255 else {
            throw error(node, "`soft_fail` lists \(entries.count) exit statuses; there are only 255 (use `true` for any failure)")
        }
        var statuses: [Int] = []
        var any = false
        for entry in entries {
            var statusNode = entry
            if let fields = entry.mapping {
                guard fields.count == 1, let field = fields.first, field.key.scalar?.string == "exit_status" else {
                    throw error(entry, "each `soft_fail` entry must be an exit status such as `1` or `{exit_status: 1}`")
                }
                statusNode = field.value
            }
            guard let text = statusNode.scalar?.string else {
                throw error(statusNode, "each `soft_fail` entry must be an exit status such as `1` or `{exit_status: 1}`, found \(describe(statusNode))")
            }
            if text == "*" {
                any = true
                continue
            }
            guard let status = Int(text), (1...255).contains(status) else {
                throw error(statusNode, "a `soft_fail` exit status must be 1-255 or \"*\", found `\(Self.excerpt(text))`")
            }
            guard !statuses.contains(status) else { throw error(statusNode, "`soft_fail` names exit status \(status) twice") }
            statuses.append(status)
        }
        if any { return .always }
        return statuses.isEmpty ? .never : .exitStatuses(statuses)
    }

    /// `priority: N`, a whole number within `PipelineLimits.minimumPriority...maximumPriority`.
    func priority(_ node: Node) throws(PipelineError) -> Int {
        let range = PipelineLimits.minimumPriority...PipelineLimits.maximumPriority
        guard let value = node.scalar.flatMap({ Int($0.string) }), range.contains(value) else {
            throw error(
                node,
                "`priority` must be a whole number from \(range.lowerBound) to \(range.upperBound) (higher runs first), found \(describe(node))")
        }
        return value
    }

    /// `parallelism: N`, 1 to `PipelineLimits.maximumParallelism`.
    func parallelism(_ node: Node) throws(PipelineError) -> Int {
        let maximum = PipelineLimits.maximumParallelism
        guard let value = node.scalar.flatMap({ Int($0.string) }), (1...maximum).contains(value) else {
            throw error(node, "`parallelism` must be a whole number from 1 to \(maximum), found \(describe(node))")
        }
        return value
    }

    /// `concurrency: {group: NAME, limit: N, cancel_in_progress: BOOL}`, with the group as
    /// written: it may contain `{{matrix.NAME}}`, so its characters are checked per job
    /// (`checkConcurrencyGroup`), after interpolation.
    func concurrency(_ node: Node) throws(PipelineError) -> ConcurrencyRule {
        guard let fields = node.mapping else {
            throw error(
                node,
                "`concurrency` must be a mapping such as `{group: deploy-production, limit: 1}`, found \(describe(node))")
        }
        var group: String?
        var limit = 1
        var cancelInProgress = false
        for (keyNode, value) in fields {
            switch try scalarKey(keyNode) {
            case "group":
                group = try string(value, what: "concurrency.group")
            case "limit":
                let maximum = PipelineLimits.maximumConcurrencyLimit
                guard let number = value.scalar.flatMap({ Int($0.string) }), (1...maximum).contains(number) else {
                    throw error(value, "`concurrency.limit` must be a whole number from 1 to \(maximum), found \(describe(value))")
                }
                limit = number
            case "cancel_in_progress":
                guard let flag = Self.boolean(value) else {
                    throw error(value, "`concurrency.cancel_in_progress` must be `true` or `false`, found \(describe(value))")
                }
                cancelInProgress = flag
            default:
                throw error(
                    keyNode,
                    "unknown `concurrency` key `\(Self.excerpt(keyNode.scalar?.string ?? ""))`: expected group, limit or cancel_in_progress")
            }
        }
        guard let group else { throw error(node, "`concurrency` needs a `group`, such as `{group: deploy-production}`") }
        return ConcurrencyRule(group: group, limit: limit, cancelInProgress: cancelInProgress)
    }

    /// A concurrency group after interpolation: it names a queue shared by every pipeline,
    /// so it is a plain token (see `isValidConcurrencyGroup`).
    func checkConcurrencyGroup(_ group: String, _ node: Node) throws(PipelineError) {
        guard Self.isValidConcurrencyGroup(group) else {
            throw error(
                node,
                "`concurrency.group` must be 1-\(PipelineLimits.maximumConcurrencyGroupBytes) ASCII letters, digits, "
                    + "`.`, `_`, `-`, `/` or `:` (after `{{matrix.NAME}}` is replaced), found `\(Self.excerpt(group))`")
        }
        // The coordinator's environment rules put deploying jobs in `environment:NAME`
        // (`one_at_a_time`). A step of any pipeline joining that group could hold the
        // environment's one slot, or cancel its deploys with `cancel_in_progress`.
        guard !group.hasPrefix(Self.reservedConcurrencyGroupPrefix) else {
            throw error(
                node,
                "`concurrency.group` must not start with `\(Self.reservedConcurrencyGroupPrefix)`: those groups belong to "
                    + "the coordinator's environment rules (`one_at_a_time`)")
        }
    }

    /// The prefix of the groups the coordinator gives deploying jobs.
    public static let reservedConcurrencyGroupPrefix = "environment:"

    /// 1-100 ASCII letters, digits, `.`, `_`, `-`, `/` and `:`: `deploy/production`,
    /// `device:pixel-8`.
    public static func isValidConcurrencyGroup(_ group: String) -> Bool {
        let bytes = group.utf8
        guard !bytes.isEmpty, bytes.count <= PipelineLimits.maximumConcurrencyGroupBytes else { return false }
        return bytes.allSatisfy { byte in
            MatrixTemplate.isNameByte(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: ":")
        }
    }

    /// YAML's booleans as the core schema writes them (`true`, `True`, `TRUE`, and the
    /// same for false), quoted or not; nil for anything else. `yes`/`on` are refused: YAML
    /// 1.2 dropped them, and a key that reads `on` as true surprises someone.
    static func boolean(_ node: Node) -> Bool? {
        switch node.scalar?.string {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }
}
