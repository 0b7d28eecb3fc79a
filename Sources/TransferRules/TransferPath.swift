/// A relative path inside a job's work dir, as a step names it: the shape every glob,
/// cache path, checksum file and artifact name must have before anyone opens a file by it.
///
/// Refused: empty, absolute (`/…`), a `..` or `.` or empty segment (`a//b`, a trailing
/// `/`), a backslash (no escapes, and no Windows separators that mean something else on
/// another host), NUL and other control characters, and more than
/// `TransferLimits.maximumPathBytes` bytes or `maximumSegments` segments. What is left
/// cannot name anything outside the directory it is resolved in, as long as no component
/// on the way is a symbolic link, which the agent checks as it opens each one.
public enum TransferPath {
    /// Why `text` is not a valid relative path, or nil when it is. `what` names it in the
    /// message (`artifact glob`, `cache path`).
    public static func problem(with text: String, what: String, maximumBytes: Int = TransferLimits.maximumPathBytes) -> String? {
        let bytes = text.utf8
        if bytes.isEmpty { return "\(what) is empty" }
        if bytes.count > maximumBytes {
            return "\(what) is \(bytes.count) bytes long; the limit is \(maximumBytes)"
        }
        if bytes.first == UInt8(ascii: "/") {
            return "\(what) `\(text)` is absolute: paths are relative to the job's work dir"
        }
        if bytes.contains(UInt8(ascii: "\\")) { return "\(what) contains a backslash: use `/` between directories" }
        if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "\(what) contains a control character"
        }
        let segments = text.split(separator: "/", omittingEmptySubsequences: false)
        if segments.count > TransferLimits.maximumSegments {
            return "\(what) has \(segments.count) segments; the limit is \(TransferLimits.maximumSegments)"
        }
        for segment in segments {
            switch segment {
            case "": return "\(what) `\(text)` has an empty segment (`//` or a trailing `/`)"
            case "..": return "\(what) `\(text)` contains `..`: it must stay inside the job's work dir"
            case ".": return "\(what) `\(text)` contains a `.` segment: write the path without it"
            default: continue
            }
        }
        return nil
    }

    /// The path's segments; call only on a path without a `problem`.
    public static func segments(of text: String) -> [Substring] {
        text.split(separator: "/", omittingEmptySubsequences: false)
    }
}
