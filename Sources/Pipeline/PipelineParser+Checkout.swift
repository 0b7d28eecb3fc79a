import Yams

/// `checkout:` (docs/pipeline.md, "Checkout"): `true`, `false`, or a mapping of `depth`,
/// `submodules` and `path`.
extension PipelineParser {
    func checkoutOptions(_ node: Node) throws(PipelineError) -> CheckoutOptions {
        let expected = "`checkout` must be `true`, `false` or a mapping such as `{depth: 1, submodules: true, path: src}`"
        if node.scalar != nil {
            guard let flag = Self.boolean(node) else { throw error(node, "\(expected), found \(describe(node))") }
            return flag ? .default : .disabled
        }
        guard let fields = node.mapping else { throw error(node, "\(expected), found \(describe(node))") }
        var options = CheckoutOptions.default
        for (keyNode, value) in fields {
            switch try scalarKey(keyNode) {
            case "depth":
                let maximum = CheckoutOptions.maximumDepth
                guard let depth = value.scalar.flatMap({ Int($0.string) }), (0...maximum).contains(depth) else {
                    throw error(
                        value,
                        "`checkout.depth` must be a whole number from 0 (the full history) to \(maximum), found \(describe(value))")
                }
                options.depth = depth
            case "submodules":
                guard let flag = Self.boolean(value) else {
                    throw error(value, "`checkout.submodules` must be `true` or `false`, found \(describe(value))")
                }
                options.submodules = flag
            case "path":
                let text = try string(value, what: "checkout.path")
                switch CheckoutOptions.normalizedPath(text) {
                case .success(let path): options.path = path
                case .failure(let problem):
                    throw error(value, "`checkout.path` `\(Self.excerpt(text))` \(problem)")
                }
            default:
                throw error(
                    keyNode,
                    "unknown `checkout` key `\(Self.excerpt(keyNode.scalar?.string ?? ""))`: expected depth, submodules or path")
            }
        }
        return options
    }
}
