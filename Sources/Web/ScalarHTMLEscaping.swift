import Mustache

/// HTML escaping by Unicode scalar, the unit a browser's parser reads.
///
/// swift-mustache's own HTML escaping walks `Character`s (grapheme clusters): a `"`
/// followed by a combining mark is one `Character` that is not `"`, so it passes
/// unescaped, and the browser still ends the attribute at the quote. A commit message or
/// step name then writes attributes of its own. Every template starts with
/// `{{% CONTENT_TYPE: GANTRY_HTML}}` to use this instead.
struct ScalarHTMLContentType: MustacheContentType {
    static let name = "GANTRY_HTML"

    func escapeText(_ text: String) -> String { Self.escape(text) }

    static func escape(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
            case "'": out.append(contentsOf: "&#39;".unicodeScalars)
            default: out.append(scalar)
            }
        }
        return String(out)
    }
}
