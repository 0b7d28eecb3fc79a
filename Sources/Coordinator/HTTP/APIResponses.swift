import Foundation
import GantryProtocol
import Hummingbird
import NIOFoundationCompat

/// JSON response helpers: every error has the same `{"error": {"code", "message", ...}}` shape.
enum APIResponses {
    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        do {
            let data = try API.encoder.encode(value)
            return Response(
                status: status, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        } catch {
            return Self.error(.internalServerError, code: "internal", message: "could not encode the response: \(error)")
        }
    }

    static func error(
        _ status: HTTPResponse.Status, code: String, message: String, file: String? = nil, line: Int? = nil,
        column: Int? = nil
    ) -> Response {
        let body = API.ErrorBody(code: code, message: message, file: file, line: line, column: column)
        let data = (try? API.encoder.encode(body)) ?? Data(message.utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
