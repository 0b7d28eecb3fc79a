import Foundation
import Hummingbird
import NIOCore

/// A request body read whole, which only small bodies may be: a pipeline file, a JSON
/// request. Past `limit` bytes the read stops and the request gets 413 `too_large`;
/// nothing more of it is buffered. Large bodies (artifact bytes) are streamed instead.
enum BoundedBody {
    /// The response that refuses a body over its limit.
    struct TooLarge: Error {
        var response: Response
    }

    /// The body, or 413 naming `what` ("the request body", "the uploaded file") and the limit.
    static func collect(_ request: Request, upTo limit: Int, what: String) async -> Result<ByteBuffer, TooLarge> {
        var request = request
        do {
            return .success(try await request.collectBody(upTo: limit))
        } catch {
            return .failure(
                TooLarge(response: APIResponses.error(.contentTooLarge, code: "too_large", message: "\(what) exceeds \(limit) bytes")))
        }
    }
}
