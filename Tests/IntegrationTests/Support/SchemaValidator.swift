import Foundation

/// The subset of JSON Schema (2020-12, as OpenAPI 3.1 uses it) that docs/openapi.json
/// uses: `type` (a name or a list, `null` included), `properties`, `required`,
/// `additionalProperties`, `items`, `enum`, `$ref` within the document, `oneOf`, `anyOf`,
/// `allOf`, `format: date-time`, `minimum` and `maximum`. Annotations (`description`,
/// `default`, `contentMediaType`) are ignored. An unknown keyword is a violation, so the
/// document cannot use a rule this validator would silently skip.
struct SchemaValidator: Sendable {
    /// The whole document: `$ref`s resolve against it.
    let document: JSONValue

    static let annotations: Set<String> = ["description", "default", "contentMediaType", "title", "examples"]
    static let keywords: Set<String> = [
        "type", "properties", "required", "additionalProperties", "items", "enum", "$ref", "oneOf", "anyOf", "allOf",
        "format", "minimum", "maximum",
    ]

    /// Each violation as `JSON-POINTER: what is wrong`; empty when `value` is valid.
    func violations(of value: JSONValue, against schema: JSONValue, at pointer: String = "", depth: Int = 0) -> [String] {
        let here = pointer.isEmpty ? "/" : pointer
        guard depth < 64 else { return ["\(here): the schema nests (or refers) more than 64 levels deep"] }
        guard let rules = schema.objectMembers else {
            if case .bool(let allowed) = schema { return allowed ? [] : ["\(here): no value is allowed here"] }
            return ["\(here): the schema is not an object"]
        }
        var found: [String] = []
        for key in rules.keys where !Self.keywords.contains(key) && !Self.annotations.contains(key) {
            found.append("\(here): the schema uses `\(key)`, which this validator does not know")
        }
        if let reference = rules["$ref"]?.string {
            guard let target = resolve(reference) else { return found + ["\(here): unresolvable $ref \(reference)"] }
            found += violations(of: value, against: target, at: pointer, depth: depth + 1)
        }
        if let type = rules["type"] {
            let allowed: [String]
            switch type {
            case .string(let name): allowed = [name]
            case .array(let names): allowed = names.compactMap(\.string)
            default: allowed = []
            }
            if !value.schemaTypes.contains(where: allowed.contains) {
                return found + ["\(here): expected \(allowed.joined(separator: " or ")), got \(value.schemaTypes[0]) \(Self.excerpt(value))"]
            }
        }
        if case .array(let options) = rules["enum"], !options.contains(value) {
            found.append("\(here): \(Self.excerpt(value)) is not one of the documented values")
        }
        if rules["format"]?.string == "date-time", case .string(let text) = value, !Self.isDateTime(text) {
            found.append("\(here): '\(text)' is not an RFC 3339 date-time")
        }
        if case .number(let number) = value {
            if case .number(let minimum) = rules["minimum"], number < minimum { found.append("\(here): \(number) is below \(minimum)") }
            if case .number(let maximum) = rules["maximum"], number > maximum { found.append("\(here): \(number) is above \(maximum)") }
        }
        if case .object(let members) = value {
            let properties = rules["properties"]?.objectMembers ?? [:]
            if case .array(let required) = rules["required"] {
                for name in required.compactMap(\.string) where members[name] == nil {
                    found.append("\(pointer)/\(Self.escape(name)): required, but absent")
                }
            }
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                let memberPointer = "\(pointer)/\(Self.escape(name))"
                if let property = properties[name] {
                    found += violations(of: member, against: property, at: memberPointer, depth: depth + 1)
                } else if let additional = rules["additionalProperties"] {
                    if case .bool(false) = additional {
                        found.append("\(memberPointer): not a documented property")
                    } else {
                        found += violations(of: member, against: additional, at: memberPointer, depth: depth + 1)
                    }
                }
            }
        }
        if case .array(let elements) = value, let items = rules["items"] {
            for (index, element) in elements.enumerated() {
                found += violations(of: element, against: items, at: "\(pointer)/\(index)", depth: depth + 1)
            }
        }
        if case .array(let all) = rules["allOf"] {
            for option in all { found += violations(of: value, against: option, at: pointer, depth: depth + 1) }
        }
        if case .array(let any) = rules["anyOf"],
            !any.contains(where: { violations(of: value, against: $0, at: pointer, depth: depth + 1).isEmpty })
        {
            found.append("\(here): matches none of anyOf")
        }
        if case .array(let one) = rules["oneOf"] {
            let matching = one.filter { violations(of: value, against: $0, at: pointer, depth: depth + 1).isEmpty }.count
            if matching != 1 { found.append("\(here): matches \(matching) of oneOf, not exactly one") }
        }
        return found
    }

    /// A JSON pointer within the document (`#/components/schemas/Job`).
    func resolve(_ reference: String) -> JSONValue? {
        guard reference.hasPrefix("#") else { return nil }
        var node = document
        for token in reference.dropFirst().split(separator: "/") {
            let key = token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            guard let next = node[key] else { return nil }
            node = next
        }
        return node
    }

    static func escape(_ name: String) -> String {
        name.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }

    static func excerpt(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): return "'\(text.prefix(60))'"
        case .number(let number): return String(number)
        case .bool(let flag): return String(flag)
        case .null: return "null"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// RFC 3339: `2026-12-01T22:02:09Z`, fractions and offsets allowed.
    static func isDateTime(_ text: String) -> Bool {
        text.wholeMatch(of: /\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})/) != nil
    }
}
