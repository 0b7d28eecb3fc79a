import Yams

/// One combination of a `matrix:`: the values in their key order (the dimensions' order,
/// or as written in an `include` entry), which is the order a job name lists them in, and
/// the same as a dictionary for interpolation.
struct MatrixCombination: Sendable, Equatable {
    struct Pair: Sendable, Equatable {
        var name: String
        var value: String
    }

    var pairs: [Pair]
    var values: [String: String]

    init(_ pairs: [Pair]) {
        self.pairs = pairs
        values = Dictionary(pairs.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
    }
}

extension PipelineParser {
    static let matrixExample = "such as `{os: [linux, macos], swift: [\"6.0\", \"6.1\"]}`"

    /// `matrix:` → its combinations: the dimensions' product in file order (the first
    /// dimension varies slowest), without those an `exclude` entry matches, then each
    /// `include` entry that is not already there.
    ///
    /// Every count is checked before anything is listed: the dimensions and their values,
    /// the product (computed without overflow) against
    /// `PipelineLimits.maximumMatrixCombinationsBeforeExclude` (or, without `exclude`,
    /// against `maximumJobsPerStep`, which it could not get under), and the `exclude` and
    /// `include` lists. The caller checks the result against the job limits.
    func matrix(_ node: Node) throws(PipelineError) -> [MatrixCombination] {
        guard let fields = node.mapping else {
            throw error(
                node,
                "`matrix` must be a mapping of dimension names to lists of values \(Self.matrixExample), "
                    + "optionally with `exclude:` and `include:`; found \(describe(node))")
        }
        let dimensionCount = fields.count(where: { !["exclude", "include"].contains($0.key.scalar?.string) })
        guard dimensionCount <= PipelineLimits.maximumMatrixDimensions else {
            throw error(node, "the matrix has \(dimensionCount) dimensions; the limit is \(PipelineLimits.maximumMatrixDimensions)")
        }
        var dimensions: [(name: String, values: [String])] = []
        var excludeNode: Node?
        var includeNode: Node?
        for (keyNode, value) in fields {
            let key = try scalarKey(keyNode)
            switch key {
            case "exclude": excludeNode = value
            case "include": includeNode = value
            default:
                try checkMatrixName(key, keyNode)
                dimensions.append((key, try matrixValues(value, dimension: key)))
            }
        }
        guard !dimensions.isEmpty || includeNode != nil else {
            throw error(node, "`matrix` has no dimensions: give at least one, \(Self.matrixExample)")
        }

        var product = 1
        var overflow = false
        for dimension in dimensions where !overflow {
            (product, overflow) = product.multipliedReportingOverflow(by: dimension.values.count)
        }
        let sizes = dimensions.map { "\($0.values.count)" }.joined(separator: " × ")
        if dimensions.count > 0, overflow || product > PipelineLimits.maximumJobsPerStep {
            let count = overflow ? "more than \(Int.max)" : "\(product)"
            if excludeNode == nil {
                throw error(
                    node,
                    "the matrix has \(count) combinations (\(sizes)); the limit is \(PipelineLimits.maximumJobsPerStep) jobs per step")
            }
            if overflow || product > PipelineLimits.maximumMatrixCombinationsBeforeExclude {
                throw error(
                    node,
                    "the matrix has \(count) combinations (\(sizes)) before `exclude`; the limit is "
                        + "\(PipelineLimits.maximumMatrixCombinationsBeforeExclude) before `exclude` "
                        + "(and \(PipelineLimits.maximumJobsPerStep) jobs per step after it)")
            }
        }

        var excludes: [[(dimension: Int, value: Int)]] = []
        if let excludeNode { excludes = try matrixExcludes(excludeNode, dimensions: dimensions) }
        var combinations: [MatrixCombination] = []
        if !dimensions.isEmpty {
            // An odometer over value indices; the last dimension turns fastest.
            var indices = Array(repeating: 0, count: dimensions.count)
            for _ in 0..<product {
                let excluded = excludes.contains { rule in rule.allSatisfy { indices[$0.dimension] == $0.value } }
                if !excluded {
                    combinations.append(
                        MatrixCombination(dimensions.indices.map { .init(name: dimensions[$0].name, value: dimensions[$0].values[indices[$0]]) }))
                }
                var position = dimensions.count - 1
                while position >= 0 {
                    indices[position] += 1
                    if indices[position] < dimensions[position].values.count { break }
                    indices[position] = 0
                    position -= 1
                }
            }
            if combinations.isEmpty, let excludeNode {
                throw error(excludeNode, "`exclude` removes every combination of the matrix: the step would have no jobs")
            }
        }
        if let includeNode {
            var seen = Set(combinations.map(\.values))
            for combination in try matrixIncludes(includeNode) where seen.insert(combination.values).inserted {
                combinations.append(combination)
            }
        }
        // A step without jobs would never end, and nothing after it would ever be decided.
        guard !combinations.isEmpty else {
            throw error(includeNode ?? node, "the matrix has no combinations (an empty `include`): the step would have no jobs")
        }
        return combinations
    }

    /// A dimension's values: a non-empty list of distinct scalars.
    private func matrixValues(_ node: Node, dimension: String) throws(PipelineError) -> [String] {
        guard let items = node.sequence else {
            throw error(node, "`matrix.\(dimension)` must be a list of values such as `[linux, macos]`, found \(describe(node))")
        }
        guard !items.isEmpty else { throw error(node, "`matrix.\(dimension)` has no values") }
        guard items.count <= PipelineLimits.maximumMatrixValues else {
            throw error(
                node, "`matrix.\(dimension)` has \(items.count) values; the limit is \(PipelineLimits.maximumMatrixValues)")
        }
        var values: [String] = []
        for item in items {
            let value = try matrixValue(item, what: "matrix.\(dimension)")
            guard !values.contains(value) else {
                throw error(item, "`matrix.\(dimension)` lists `\(Self.excerpt(value))` twice")
            }
            values.append(value)
        }
        return values
    }

    /// `exclude:` → for each entry, the (dimension, value) index pairs it matches.
    private func matrixExcludes(
        _ node: Node, dimensions: [(name: String, values: [String])]
    ) throws(PipelineError) -> [[(dimension: Int, value: Int)]] {
        let example = "such as `[{os: macos, swift: \"6.0\"}]`"
        guard let entries = node.sequence else {
            throw error(node, "`matrix.exclude` must be a list of mappings of dimension to value \(example), found \(describe(node))")
        }
        guard entries.count <= PipelineLimits.maximumMatrixAdjustments else {
            throw error(
                node, "`matrix.exclude` has \(entries.count) entries; the limit is \(PipelineLimits.maximumMatrixAdjustments)")
        }
        let names = dimensions.map(\.name)
        var rules: [[(dimension: Int, value: Int)]] = []
        for entry in entries {
            guard let fields = entry.mapping, !fields.isEmpty else {
                throw error(entry, "each `matrix.exclude` entry must be a non-empty mapping of dimension to value \(example)")
            }
            var rule: [(dimension: Int, value: Int)] = []
            for (keyNode, valueNode) in fields {
                let name = try scalarKey(keyNode)
                guard let dimension = names.firstIndex(of: name) else {
                    throw error(
                        keyNode,
                        "`matrix.exclude` names `\(Self.excerpt(name))`, which is not a dimension (dimensions: \(Self.list(names)))")
                }
                let value = try matrixValue(valueNode, what: "matrix.exclude.\(name)")
                guard let index = dimensions[dimension].values.firstIndex(of: value) else {
                    throw error(
                        valueNode,
                        "`matrix.exclude` names `\(name): \(Self.excerpt(value))`, which is not a value of `\(name)` "
                            + "(values: \(Self.list(dimensions[dimension].values.map { Self.excerpt($0) })))")
                }
                rule.append((dimension, index))
            }
            rules.append(rule)
        }
        return rules
    }

    /// `include:` → one combination per entry, with its keys in the order written; keys
    /// need not be dimensions (an entry can add a value only some jobs use).
    private func matrixIncludes(_ node: Node) throws(PipelineError) -> [MatrixCombination] {
        let example = "such as `[{os: windows, swift: \"6.1\"}]`"
        guard let entries = node.sequence else {
            throw error(node, "`matrix.include` must be a list of mappings of names to values \(example), found \(describe(node))")
        }
        guard entries.count <= PipelineLimits.maximumMatrixAdjustments else {
            throw error(
                node, "`matrix.include` has \(entries.count) entries; the limit is \(PipelineLimits.maximumMatrixAdjustments)")
        }
        var combinations: [MatrixCombination] = []
        for entry in entries {
            guard let fields = entry.mapping, !fields.isEmpty else {
                throw error(entry, "each `matrix.include` entry must be a non-empty mapping of names to values \(example)")
            }
            guard fields.count <= PipelineLimits.maximumMatrixDimensions else {
                throw error(
                    entry,
                    "a `matrix.include` entry has \(fields.count) values; the limit is \(PipelineLimits.maximumMatrixDimensions), as for dimensions")
            }
            var pairs: [MatrixCombination.Pair] = []
            for (keyNode, valueNode) in fields {
                let name = try scalarKey(keyNode)
                try checkMatrixName(name, keyNode)
                pairs.append(.init(name: name, value: try matrixValue(valueNode, what: "matrix.include.\(name)")))
            }
            combinations.append(MatrixCombination(pairs))
        }
        return combinations
    }

    /// A matrix value: a scalar taken as written (`6.10` stays `6.10`, `true` stays `true`),
    /// at most `PipelineLimits.maximumMatrixValueBytes`, on one line without control
    /// characters, because it ends up in job names, labels and commands.
    private func matrixValue(_ node: Node, what: String) throws(PipelineError) -> String {
        guard let scalar = node.scalar else {
            throw error(node, "`\(what)` values must be plain values such as `linux` or `\"6.0\"`, found \(describe(node))")
        }
        let value = scalar.string
        guard value.utf8.count <= PipelineLimits.maximumMatrixValueBytes else {
            throw error(
                node, "a `\(what)` value is \(value.utf8.count) bytes long; the limit is \(PipelineLimits.maximumMatrixValueBytes)")
        }
        guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw error(node, "a `\(what)` value contains a control character (such as a newline): values appear in job names")
        }
        return value
    }

    /// A dimension (or `include` key) name: 1-64 ASCII letters, digits, `_` and `-`, what
    /// `{{matrix.NAME}}` can refer to.
    private func checkMatrixName(_ name: String, _ node: Node) throws(PipelineError) {
        guard !name.isEmpty, name.utf8.count <= PipelineLimits.maximumMatrixNameBytes, name.utf8.allSatisfy(MatrixTemplate.isNameByte)
        else {
            throw error(
                node,
                "matrix name `\(Self.excerpt(name))` must be 1-\(PipelineLimits.maximumMatrixNameBytes) ASCII letters, digits, `_` or `-`")
        }
    }
}
