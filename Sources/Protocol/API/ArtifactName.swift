#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The rules of an artifact's name and digest, shared by the coordinator (which refuses
/// what breaks them), the CLI and the agent (which check before they upload).
///
/// A name becomes a path under a later step's work dir when it is downloaded, so it must
/// not be able to leave it: relative, `/`-separated, no `..`, `.` or empty segment, no
/// NUL or other control character, at most 1,024 bytes.
public enum ArtifactName {
    public static let maximumBytes = 1024

    /// Why `name` is not a valid artifact name, or nil.
    public static func problem(_ name: String) -> String? {
        let bytes = name.utf8
        guard !bytes.isEmpty else { return "an artifact name must not be empty" }
        guard bytes.count <= maximumBytes else {
            return "an artifact name is at most \(maximumBytes) bytes; this one is \(bytes.count)"
        }
        guard !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            return "an artifact name must not contain control characters"
        }
        guard !name.hasPrefix("/") else { return "an artifact name must be relative, not start with `/`" }
        guard !name.contains("\\") else { return "an artifact name uses `/` as its separator, not `\\`" }
        for segment in name.split(separator: "/", omittingEmptySubsequences: false) {
            if segment.isEmpty { return "an artifact name must not contain an empty segment (`//` or a trailing `/`)" }
            if segment == "." || segment == ".." { return "an artifact name must not contain a `\(segment)` segment" }
        }
        return nil
    }
}

/// A sha256 as Gantry writes it: 64 lowercase hex digits, no prefix.
public enum ArtifactDigest {
    public static func isValid(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    public static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
