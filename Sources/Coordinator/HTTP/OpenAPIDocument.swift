import GantryProtocol
import Hummingbird
import NIOCore

/// The OpenAPI 3.1 description of the HTTP API, served at `GET /v1/openapi.json`.
///
/// `docs/openapi.json` is the source, kept by hand and reviewed like code;
/// `scripts/generate-openapi-swift` copies it into `text` (`OpenAPIDocument+Generated.swift`)
/// so the binary serves the description of the API it was built with and never reads the
/// docs folder at run time. Tests check that every `APIRoute` is described, that nothing
/// else is, and that the JSON responses the integration tests receive validate against it.
public enum OpenAPIDocument {
    static var response: Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
