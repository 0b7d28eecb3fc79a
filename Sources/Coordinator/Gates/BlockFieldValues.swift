import GantryPipeline

/// The values an approval gives a block's fields, checked against the block: every
/// given key must be a field, a `select` value one of its options, each value at most
/// 64 KiB without NUL; a field left out takes its default; a required one without a
/// value or default refuses the approval. Pure, so the route checks it before anything
/// changes.
enum BlockFieldValues {
    static let maximumValueBytes = 64 * 1024

    static func resolve(_ block: BlockStep, given: [String: String]) -> Result<[String: String], BlockDecisionRefusal> {
        let known = Set(block.fields.map(\.key))
        if let unknown = given.keys.sorted().first(where: { !known.contains($0) }) {
            let names = block.fields.map(\.key).joined(separator: ", ")
            return .failure(
                .invalidFields(
                    "`\(unknown.logSafe(maximum: 64))` is not a field of this block"
                        + (names.isEmpty ? " (it has none)" : " (its fields: \(names))")))
        }
        var values: [String: String] = [:]
        for field in block.fields {
            guard let value = given[field.key] ?? field.defaultValue else {
                if field.required {
                    return .failure(.invalidFields("field `\(field.key)` (\(field.label)) is required: pass --field \(field.key)=VALUE"))
                }
                continue
            }
            guard value.utf8.count <= maximumValueBytes, !value.utf8.contains(0) else {
                return .failure(.invalidFields("field `\(field.key)` is over 64 KiB or contains NUL"))
            }
            if !field.options.isEmpty, !field.options.contains(value) {
                return .failure(
                    .invalidFields(
                        "field `\(field.key)` must be one of \(field.options.joined(separator: ", ")), not `\(value.logSafe(maximum: 64))`"))
            }
            values[field.key] = value
        }
        return .success(values)
    }
}
