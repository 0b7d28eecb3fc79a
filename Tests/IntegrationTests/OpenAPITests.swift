import AsyncHTTPClient
import Foundation
import GantryProtocol
import NIOHTTP1
import Testing

/// The API as docs/openapi.json describes it, against the real coordinator binary: the
/// served document, the one error shape for what no handler answers, and the bounded,
/// cursor-paged job listing. (Every JSON response every integration test receives is
/// also validated against the document, in `TestCluster.request`.)
@Suite("OpenAPI", .serialized, .timeLimit(.minutes(3)))
struct OpenAPITests {
    static let documentFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/openapi.json")

    @Test func theServedDocumentIsTheFile() async throws {
        try await TestCluster.with("openapi-document") { cluster in
            let (status, data) = try await cluster.request(.GET, APIRoute.openAPIDocument.path)
            #expect(status == 200)
            #expect(data == (try Data(contentsOf: Self.documentFile)), "/v1/openapi.json differs from docs/openapi.json")
            let document = try JSONValue.parse(data)
            #expect(document["openapi"] == .string("3.1.0"))
            // The API is never open: the document too needs a token.
            let (anonymous, _) = try await cluster.request(.GET, APIRoute.openAPIDocument.path, token: "")
            #expect(anonymous == 401)
        }
    }

    @Test func unknownRoutesAndMethodsAnswerTheErrorShape() async throws {
        try await TestCluster.with("openapi-errors") { cluster in
            let (missing, body) = try await cluster.request(.GET, "/v1/no-such-thing")
            #expect(missing == 404)
            #expect(try Self.code(body) == "not_found")

            var request = HTTPClientRequest(url: cluster.serverURL + "/v1/pipelines")
            request.method = .DELETE
            request.headers.add(name: "Authorization", value: "Bearer \(cluster.adminToken)")
            let response = try await cluster.http.execute(request, timeout: .seconds(30))
            let data = Data(buffer: try await response.body.collect(upTo: 64 * 1024))
            #expect(response.status.code == 405)
            #expect(response.headers.first(name: "Allow") == "GET, POST")
            #expect(try Self.code(data) == "method_not_allowed")
            #expect(response.headers.first(name: "Content-Type") == "application/json")
        }
    }

    @Test func jobListingIsBoundedAndPagedByLinkHeaders() async throws {
        try await TestCluster.with("openapi-jobs") { cluster in
            // No agent: the jobs stay queued, five pipelines of three jobs each.
            for index in 0..<5 {
                _ = try await cluster.submit("steps:\n" + (0..<3).map { "  - key: s\($0)\n    command: echo \(index)\n" }.joined())
            }
            for query in ["limit=0", "limit=5001", "limit=x", "cursor=nonsense"] {
                let (status, data) = try await cluster.request(.GET, "/v1/jobs?\(query)")
                #expect(status == 400, "?\(query) answered \(status)")
                #expect(try Self.code(data) == "bad_request")
            }
            var seen: [String] = []
            var next: String? = "/v1/jobs?limit=4"
            var pages = 0
            while let path = next, pages < 10 {
                pages += 1
                let (status, data, link) = try await Self.get(cluster, path)
                #expect(status == 200)
                let jobs = try API.decoder.decode([API.Job].self, from: data)
                #expect(jobs.count <= 4)
                seen += jobs.map(\.id)
                next = link.flatMap(Self.nextTarget)
            }
            #expect(pages == 4, "15 jobs in pages of 4")
            #expect(seen.count == 15 && Set(seen).count == 15, "every job once: \(seen)")
            let (_, all) = try await cluster.request(.GET, "/v1/jobs?limit=100")
            #expect(try API.decoder.decode([API.Job].self, from: all).map(\.id) == seen, "pages in the same order as one listing")
        }
    }

    static func code(_ data: Data) throws -> String? {
        try API.decoder.decode(API.ErrorBody.self, from: data).error.code
    }

    /// A GET that also returns the `Link` header.
    static func get(_ cluster: TestCluster, _ path: String) async throws -> (Int, Data, String?) {
        var request = HTTPClientRequest(url: cluster.serverURL + path)
        request.headers.add(name: "Authorization", value: "Bearer \(cluster.adminToken)")
        let response = try await cluster.http.execute(request, timeout: .seconds(30))
        let data = Data(buffer: try await response.body.collect(upTo: 16 * 1024 * 1024))
        APIContract.shared.check(
            method: "GET", path: path, status: Int(response.status.code), contentType: response.headers.first(name: "Content-Type"),
            body: data, sourceLocation: #_sourceLocation)
        return (Int(response.status.code), data, response.headers.first(name: "Link"))
    }

    /// The target of `<TARGET>; rel="next"`.
    static func nextTarget(_ link: String) -> String? {
        guard link.hasSuffix("; rel=\"next\""), link.hasPrefix("<"), let end = link.firstIndex(of: ">") else { return nil }
        return String(link[link.index(after: link.startIndex)..<end])
    }
}
