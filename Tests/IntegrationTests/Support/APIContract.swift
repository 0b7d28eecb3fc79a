import Foundation
import Testing

/// docs/openapi.json as the integration tests hold the coordinator to it: every JSON
/// response `TestCluster.request` receives is matched to its operation (method and path
/// template) and validated against the schema documented for its status.
struct APIContract: Sendable {
    let document: JSONValue
    let validator: SchemaValidator

    /// Read once from the repository (not from the coordinator under test, which could
    /// serve a document that agrees with whatever it does).
    static let shared: APIContract = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let url = root.appendingPathComponent("docs/openapi.json")
        do {
            return APIContract(document: try JSONValue.parse(try Data(contentsOf: url)))
        } catch {
            fatalError("docs/openapi.json does not parse: \(error)")
        }
    }()

    init(document: JSONValue) {
        self.document = document
        self.validator = SchemaValidator(document: document)
    }

    /// The documented operation for `method` and `path` (a query is ignored): the path
    /// template whose segments match, literal segments preferred over parameters.
    func operation(_ method: String, _ path: String) -> (template: String, operation: JSONValue)? {
        let bare = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? path
        let segments = bare.split(separator: "/", omittingEmptySubsequences: false)
        var best: (template: String, operation: JSONValue, literals: Int)?
        for (template, item) in document["paths"]?.objectMembers ?? [:] {
            let parts = template.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == segments.count, let operation = item[method.lowercased()] else { continue }
            guard zip(parts, segments).allSatisfy({ $0.hasPrefix("{") || $0 == $1 }) else { continue }
            let literals = parts.filter { !$0.hasPrefix("{") }.count
            if best == nil || literals > best!.literals { best = (template, operation, literals) }
        }
        return best.map { ($0.template, $0.operation) }
    }

    /// What is wrong with a response, or nil when it matches the document. Only JSON
    /// bodies are validated; an unknown path's 404 or a 405 must be the error shape.
    func problems(method: String, path: String, status: Int, contentType: String?, body: Data) -> String? {
        guard let contentType, contentType.hasPrefix("application/json") else { return nil }
        let value: JSONValue
        do {
            value = try JSONValue.parse(body)
        } catch {
            return "\(method) \(path) answered \(status) with Content-Type application/json but a body that is not JSON"
        }
        let schema: JSONValue
        let what: String
        if let (template, operation) = operation(method, path) {
            let responses = operation["responses"]?.objectMembers ?? [:]
            guard let response = responses[String(status)] ?? responses["default"] else {
                return "\(method) \(template) answered \(status), which docs/openapi.json does not document"
            }
            let resolved = response["$ref"]?.string.flatMap(validator.resolve) ?? response
            guard let documented = resolved["content"]?["application/json"]?["schema"] else {
                return "\(method) \(template) answered \(status) with JSON, but docs/openapi.json documents no JSON body for it"
            }
            (schema, what) = (documented, "\(method) \(template) \(status)")
        } else {
            guard [401, 404, 405].contains(status) else {
                return "\(method) \(path) answered \(status), but docs/openapi.json has no such operation"
            }
            (schema, what) = (.object(["$ref": .string("#/components/schemas/Error")]), "\(method) \(path) (no route) \(status)")
        }
        let found = validator.violations(of: value, against: schema)
        guard !found.isEmpty else { return nil }
        return "the response to \(what) does not match docs/openapi.json:\n  " + found.prefix(20).joined(separator: "\n  ")
            + "\nbody: " + String(decoding: body.prefix(2000), as: UTF8.self)
    }

    /// Records a test failure for a response that does not match the document.
    func check(method: String, path: String, status: Int, contentType: String?, body: Data, sourceLocation: SourceLocation) {
        if let problem = problems(method: method, path: path, status: status, contentType: contentType, body: body) {
            Issue.record(Comment(rawValue: problem), sourceLocation: sourceLocation)
        }
    }
}
