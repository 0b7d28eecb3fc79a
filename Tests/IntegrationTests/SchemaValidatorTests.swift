import Foundation
import GantryProtocol
import Testing

/// The validator the integration tests hold responses to docs/openapi.json with: it must
/// find what is wrong and say where, or every other suite's check means nothing.
@Suite("Schema validator")
struct SchemaValidatorTests {
    let contract = APIContract.shared

    func job(_ changes: [String: JSONValue] = [:], removing: [String] = []) throws -> Data {
        let job = API.Job(
            id: "j1", pipelineId: "p1", key: "build", name: "build", state: "running", attempt: 1, agentId: "host/0",
            exitStatus: nil, reason: nil, dependsOn: [], createdAt: Date(timeIntervalSince1970: 1_795_000_000), startedAt: nil,
            finishedAt: nil, logBytes: 0)
        guard case .object(var members) = try JSONValue.parse(try API.encoder.encode(job)) else { throw CancellationError() }
        for (key, value) in changes { members[key] = value }
        for key in removing { members[key] = nil }
        return try JSONEncoder().encode(EncodableJSON(value: .object(members)))
    }

    func problems(_ body: Data, path: String = "/v1/jobs/j1", status: Int = 200) -> String? {
        contract.problems(method: "GET", path: path, status: status, contentType: "application/json", body: body)
    }

    @Test func aResponseAsTheEncoderWritesItIsValid() throws {
        #expect(problems(try job()) == nil)
    }

    @Test func eachViolationIsNamedByItsJSONPointer() throws {
        #expect(problems(try job(["state": .string("sleeping")]))?.contains("/state: 'sleeping' is not one of") == true)
        #expect(problems(try job(["attempt": .string("1")]))?.contains("/attempt: expected integer") == true)
        #expect(problems(try job(["created_at": .string("yesterday")]))?.contains("/created_at: 'yesterday' is not an RFC 3339") == true)
        #expect(problems(try job(["pipelineId": .string("p1")]))?.contains("/pipelineId: not a documented property") == true)
        #expect(problems(try job(removing: ["log_bytes"]))?.contains("/log_bytes: required, but absent") == true)
        #expect(problems(try job(["matrix": .object(["os": .number(1)])]))?.contains("/matrix/os: expected string") == true)
    }

    @Test func statusesAndRoutesTheDocumentDoesNotKnowAreProblems() throws {
        // A 202 the document does not list falls to the default: the error shape.
        #expect(problems(try job(), status: 202)?.contains("/error: required, but absent") == true)
        #expect(problems(try job(), path: "/v1/nothing/here", status: 200)?.contains("has no such operation") == true)
        let error = Data(#"{"error": {"code": "not_found", "message": "no job"}}"#.utf8)
        #expect(problems(error, status: 404) == nil)
        let unknownCode = Data(#"{"error": {"code": "oops", "message": "no job"}}"#.utf8)
        #expect(problems(unknownCode, status: 404)?.contains("/error/code: 'oops' is not one of") == true)
    }

    @Test func theMostLiteralTemplateWins() {
        #expect(contract.operation("GET", "/v1/jobs/x/cache/abc/content")?.template == "/v1/jobs/{id}/cache/{digest}/content")
        #expect(contract.operation("GET", "/v1/pipelines/x/meta-data?limit=3")?.template == "/v1/pipelines/{id}/meta-data")
        #expect(contract.operation("GET", "/v1/jobs")?.template == "/v1/jobs")
        #expect(contract.operation("DELETE", "/v1/jobs") == nil)
    }
}

/// Writes a `JSONValue` back out (tests only).
private struct EncodableJSON: Encodable {
    let value: JSONValue

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch value {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .number(let number):
            if number.rounded() == number, abs(number) < 1e15 { try container.encode(Int64(number)) } else { try container.encode(number) }
        case .string(let text): try container.encode(text)
        case .array(let elements): try container.encode(elements.map(EncodableJSON.init))
        case .object(let members): try container.encode(members.mapValues(EncodableJSON.init))
        }
    }
}
