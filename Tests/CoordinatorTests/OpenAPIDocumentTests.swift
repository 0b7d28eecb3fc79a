import Foundation
import GantryProtocol
import Testing

@testable import GantryCoordinator

/// docs/openapi.json against the code: the embedded copy is the file, every `APIRoute`
/// is documented with its method, path and permission, nothing else is, and every error
/// code a handler answers with is in the documented list (and the list names no code
/// that nothing answers with).
@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func documentText() throws -> String {
        try String(contentsOf: root.appendingPathComponent("docs/openapi.json"), encoding: .utf8)
    }

    static func document() throws -> [String: Any] {
        let parsed = try JSONSerialization.jsonObject(with: Data(try documentText().utf8))
        return try #require(parsed as? [String: Any], "docs/openapi.json is not a JSON object")
    }

    @Test func theEmbeddedDocumentIsTheFile() throws {
        #expect(
            OpenAPIDocument.text == (try Self.documentText()),
            "Sources/Coordinator/HTTP/OpenAPIDocument+Generated.swift differs from docs/openapi.json: run scripts/generate-openapi-swift and commit both")
    }

    @Test func itIsOpenAPI31() throws {
        let document = try Self.document()
        #expect(document["openapi"] as? String == "3.1.0")
        #expect((document["info"] as? [String: Any])?["title"] != nil)
    }

    @Test func everyRouteIsDocumentedAndNothingElse() throws {
        let paths = try #require(try Self.document()["paths"] as? [String: [String: Any]])
        var problems: [String] = []
        var documented = Set<String>()
        for (path, item) in paths {
            for (method, value) in item {
                guard let operation = value as? [String: Any] else { continue }
                let id = operation["operationId"] as? String ?? "?"
                documented.insert("\(method.uppercased()) \(path)")
                guard let route = APIRoute(rawValue: id) else {
                    problems.append("\(method.uppercased()) \(path) (\(id)) is documented but is no APIRoute: remove it")
                    continue
                }
                if route.method != method.uppercased() || route.path != path {
                    problems.append("\(id) is documented as \(method.uppercased()) \(path), but is \(route.method) \(route.path)")
                }
                if operation["x-gantry-permission"] as? String != route.permission?.rawValue {
                    problems.append("\(id): x-gantry-permission is not \(route.permission?.rawValue ?? "absent")")
                }
                if operation["responses"] == nil { problems.append("\(id) documents no responses") }
            }
        }
        for route in APIRoute.allCases where !documented.contains("\(route.method) \(route.path)") {
            problems.append("\(route) (\(route.method) \(route.path)) is not in docs/openapi.json")
        }
        #expect(problems.isEmpty, "\(problems.sorted().joined(separator: "\n"))")
    }

    /// The documented bounds of each listing's `limit` are the ones the handlers enforce.
    @Test func documentedLimitsAreTheEnforcedOnes() throws {
        let paths = try #require(try Self.document()["paths"] as? [String: [String: Any]])
        let expected: [(APIRoute, Int, Int)] = [
            (.listPipelines, PipelineListing.defaultLimit, PipelineListing.maximumLimit),
            (.listJobs, JobListing.defaultLimit, JobListing.maximumLimit),
            (.listDeployments, APIRouter.defaultDeploymentLimit, APIRouter.maximumDeploymentLimit),
            (.listAudit, AuditQuery.defaultLimit, AuditQuery.maximumLimit),
            (.listMetaData, APIRouter.maximumMetaDataListing, APIRouter.maximumMetaDataListing),
            (.listNotificationDeliveries, APIRouter.defaultDeliveryLimit, APIRouter.maximumDeliveryLimit),
            (.listAgents, WholeListPage.maximumLimit, WholeListPage.maximumLimit),
            (.listIdentities, WholeListPage.maximumLimit, WholeListPage.maximumLimit),
            (.listSecrets, WholeListPage.maximumLimit, WholeListPage.maximumLimit),
            (.listOwnTokens, WholeListPage.maximumLimit, WholeListPage.maximumLimit),
            (.listIdentityTokens, WholeListPage.maximumLimit, WholeListPage.maximumLimit),
            (.listProjects, WholeListPage.maximumLimit, WholeListPage.maximumLimit),
        ]
        for (route, defaultLimit, maximum) in expected {
            let operation = try #require(paths[route.path]?[route.method.lowercased()] as? [String: Any])
            let parameters = try #require(operation["parameters"] as? [[String: Any]])
            let limit = try #require(parameters.first { $0["name"] as? String == "limit" }, "\(route) documents no limit")
            let schema = try #require(limit["schema"] as? [String: Any])
            #expect(schema["minimum"] as? Int == 1, "\(route)")
            #expect(schema["maximum"] as? Int == maximum, "\(route)")
            #expect(schema["default"] as? Int == defaultLimit, "\(route)")
        }
    }

    /// Every `code: "…"` (and webhook refusal code) in Sources/Coordinator, read from the
    /// source text: a new code must be documented, a stale one removed.
    @Test func wholeListsPageByKeyWithOpaqueCursors() throws {
        let names = ["carol", "alice", "dave", "bob", "éve"]
        var query = WholeListPage.Query(limit: 2)
        var seen: [String] = []
        for _ in 0..<10 {
            let (page, next) = WholeListPage.page(names, key: { $0 }, query)
            seen += page
            guard let next else { break }
            #expect(next.hasPrefix("w") && !next.contains("/") && !next.contains("+") && !next.contains("="))
            let after: String = try #require(WholeListPage.decode(next))
            query.after = after
        }
        #expect(seen == ["alice", "bob", "carol", "dave", "éve"])
        #expect(WholeListPage.decode("nope") == nil && WholeListPage.decode("w!!") == nil)
        if case .success = WholeListPage.query(["limit": "1001"]) { Issue.record("a limit above the maximum passed") }
        if case .success = WholeListPage.query(["limit": "0"]) { Issue.record("a zero limit passed") }
    }

    @Test func theErrorCodesAreTheOnesTheHandlersUse() throws {
        let document = try Self.document()
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let documented = Set(try #require((schemas["ErrorCode"] as? [String: Any])?["enum"] as? [String]))
        var used = Set<String>()
        let sources = Self.root.appendingPathComponent("Sources/Coordinator")
        let files = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        for case let file as URL in files
        where file.pathExtension == "swift" && file.lastPathComponent != "OpenAPIDocument+Generated.swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: /code: "([a-z_]+)"/) { used.insert(String(match.output.1)) }
            for match in text.matches(of: /refuse\(\s*\.[A-Za-z]+,\s*(?:[^,]*\?\s*)?"([a-z_]+)"(?:\s*:\s*"([a-z_]+)")?/) {
                used.insert(String(match.output.1))
                if let other = match.output.2 { used.insert(String(other)) }
            }
        }
        #expect(used.subtracting(documented).isEmpty, "codes answered but not documented: \(used.subtracting(documented).sorted())")
        #expect(documented.subtracting(used).isEmpty, "codes documented but never answered: \(documented.subtracting(used).sorted())")
    }
}
