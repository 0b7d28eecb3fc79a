import Yams

/// Errors and how user text and limits are written in them.
extension PipelineParser {
    // MARK: - Errors

    func error(_ node: Node?, _ message: String) -> PipelineError {
        PipelineError(file: file, line: node?.mark.map { $0.line }, column: node?.mark.map { $0.column }, message: message)
    }

    func yamlError(_ error: YamlError) -> PipelineError {
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
    static func keyNode(_ key: String, in mapping: Node) -> Node {
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
    static func bytes(_ count: Int) -> String {
        count % (1024 * 1024) == 0 ? "\(count / (1024 * 1024)) MiB" : count % 1024 == 0 ? "\(count / 1024) KiB" : "\(count) bytes"
    }

    /// `7 days`, `1 hour`: how duration limits are written in messages.
    static func hours(_ seconds: Int) -> String {
        if seconds % 86400 == 0 { return seconds == 86400 ? "1 day" : "\(seconds / 86400) days" }
        if seconds % 3600 == 0 { return seconds == 3600 ? "1 hour" : "\(seconds / 3600) hours" }
        return "\(seconds) s"
    }

    func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return "the scalar `\(Self.excerpt(scalar.string))`"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }
}
