import Crypto
import Foundation

/// Making and recognising API token secrets.
///
/// A token is `gty_` and 64 hex digits (256 random bits): the prefix lets secret scanners
/// and people recognise a leaked Gantry token. It is stored as its SHA-256 only, looked up
/// by that digest, and the stored digest is compared again in constant time.
public enum APITokenSecret {
    public static let prefix = "gty_"

    public static func generate() -> (token: String, digest: Data) {
        let token = prefix + hex(SymmetricKey(size: .bits256))
        return (token, digest(token))
    }

    /// An id safe to show and log: `tok_` and 12 hex digits.
    public static func newID() -> String {
        "tok_" + String(hex(SymmetricKey(size: .bits128)).prefix(12))
    }

    public static func digest(_ token: String) -> Data {
        Data(SHA256.hash(data: Data(token.utf8)))
    }

    public static func constantTimeEquals(_ a: Data, _ b: Data) -> Bool {
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func hex(_ key: SymmetricKey) -> String {
        key.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
    }
}
