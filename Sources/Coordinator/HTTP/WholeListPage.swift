import Foundation
import GantryProtocol
import Hummingbird

/// Pages a listing whose rows the coordinator reads whole (agents, identities, tokens,
/// secrets, projects: hundreds or thousands, never history): `?limit=` 1 to
/// `maximumLimit` (default the maximum, so today's clients see what they saw; out of
/// range is 400), `?cursor=` the last key of the previous page. Rows are ordered by their
/// key, which is unique, so a row added or removed between pages moves no other row
/// across a page boundary.
enum WholeListPage {
    static let maximumLimit = 1000

    struct Query {
        var limit = WholeListPage.maximumLimit
        var after: String?
    }

    static func query(_ parameters: Hummingbird.Parameters) -> Result<Query, APIRouter.QueryRefusal> {
        var query = Query()
        if let text = parameters.get("limit") {
            guard let value = Int(text), (1...maximumLimit).contains(value) else {
                return .failure(APIRouter.QueryRefusal(text: "?limit= is 1 to \(maximumLimit)"))
            }
            query.limit = value
        }
        if let text = parameters.get("cursor"), !text.isEmpty {
            guard let key = decode(text) else {
                return .failure(APIRouter.QueryRefusal(text: "?cursor= is not a cursor this API handed out"))
            }
            query.after = key
        }
        return .success(query)
    }

    /// The page of `rows` after the query's cursor, and the next page's cursor if any.
    static func page<Row>(_ rows: [Row], key: (Row) -> String, _ query: Query) -> (rows: [Row], next: String?) {
        let sorted = rows.map { (key: key($0), row: $0) }.sorted { $0.key < $1.key }
        let after = query.after.map { cursor in sorted.filter { $0.key > cursor } } ?? sorted
        let page = after.prefix(query.limit)
        let next = after.count > query.limit ? page.last.map { encode($0.key) } : nil
        return (page.map(\.row), next)
    }

    /// A JSON array of the page, with an RFC 8288 `Link` to the next one (`PageLink`).
    static func response<Row, View: Encodable>(
        _ rows: [Row], key: (Row) -> String, view: (Row) -> View, _ query: Query, route: APIRoute,
        path: String? = nil
    ) -> Response {
        let (page, next) = page(rows, key: key, query)
        var response = APIResponses.json(page.map(view))
        if let next {
            response.headers[PageLink.header] = PageLink.next(
                path ?? route.path, [("limit", String(query.limit)), ("cursor", next)])
        }
        return response
    }

    /// `w` and the key in unpadded base64url: opaque, and safe in a query.
    static func encode(_ key: String) -> String {
        "w" + Data(key.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ cursor: String) -> String? {
        guard cursor.hasPrefix("w"), cursor.utf8.count <= 1400 else { return nil }
        var text = String(cursor.dropFirst()).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.utf8.count % 4 != 0 { text += "=" }
        guard let data = Data(base64Encoded: text) else { return nil }
        return String(data: data, encoding: .utf8)
    }
}
