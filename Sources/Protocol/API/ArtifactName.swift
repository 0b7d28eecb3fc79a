import GantryTransferRules

/// The rules of an artifact's name, shared by the coordinator (which refuses what breaks
/// them), the CLI and the agent (which check before they upload).
///
/// A name becomes a path under a later step's work dir when it is downloaded, so it must
/// not be able to leave it: exactly `TransferPath`'s rule for the paths and globs of a
/// pipeline file (relative, `/`-separated, no `..`, `.` or empty segment, no backslash or
/// control character, at most 64 segments), with room for 1,024 bytes rather than 512: a
/// name may be a matched file's path under a directory the step chose.
public enum ArtifactName {
    public static let maximumBytes = 1024

    /// Why `name` is not a valid artifact name, or nil.
    public static func problem(_ name: String) -> String? {
        TransferPath.problem(with: name, what: "the artifact name", maximumBytes: maximumBytes)
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
