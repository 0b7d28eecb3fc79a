import Foundation
import GantryProtocol

extension Connection {
    /// One request on a client made and shut down for it: most commands make exactly one.
    func call<Response: Decodable>(_ method: String, _ path: String) async throws -> Response {
        try await call(method, path, body: Optional<API.SubmitPipeline>.none)
    }

    func call<Body: Encodable, Response: Decodable>(_ method: String, _ path: String, body: Body?) async throws -> Response {
        let client = try client()
        defer { client.shutdown() }
        return try await client.send(method, path, body: body)
    }

    /// Prints `value` as JSON with `--json`, else the text `describe` makes of it.
    func show<T: Encodable>(_ value: T, _ describe: (T) -> String) throws {
        print(json ? try encodedJSON(value) : describe(value))
    }
}
