#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto

/// How Gantry keeps and compares bearer secrets (API tokens, join tokens, the legacy
/// join token): only their SHA-256 is stored, and digests are compared in constant time,
/// so neither a copy of the database nor the timing of a refusal reveals a secret.
public enum SecretDigest {
    public static func sha256(_ secret: String) -> Data {
        Data(SHA256.hash(data: Data(secret.utf8)))
    }

    /// Whether two digests are equal, in time that depends only on their length.
    public static func equal(_ a: Data, _ b: Data) -> Bool {
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// Whether two secrets are equal, comparing their digests (so also in time that does
    /// not depend on their common prefix or their lengths).
    public static func equal(secret a: String, _ b: String) -> Bool {
        equal(sha256(a), sha256(b))
    }

    /// 256 random bits as 64 hex digits.
    public static func random256Hex() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { CertificateEncoding.hex($0) }
    }
}
