import Foundation
import HTTPTypes

/// The RFC 8288 `Link` header that points at a listing's next page, as GitHub's API
/// does: listings whose body is a JSON array cannot grow a `next_cursor` field without
/// breaking the clients that decode the array, so the cursor travels beside the body.
/// The target is relative to the API's root (`</v1/jobs?limit=200&cursor=j42>`).
enum PageLink {
    static let header = HTTPField.Name("Link")!

    static func next(_ path: String, _ parameters: [(String, String)]) -> String {
        let query = parameters.map { "\(encode($0.0))=\(encode($0.1))" }.joined(separator: "&")
        return "<\(path)?\(query)>; rel=\"next\""
    }

    /// Everything but unreserved characters and `,` (a state list) percent-encoded.
    static func encode(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~,")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}
