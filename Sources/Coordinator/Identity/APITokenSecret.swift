import Foundation
import GantryProtocol

/// Making and recognising API token secrets.
///
/// A token is `gty_` and 64 hex digits (256 random bits): the prefix lets secret scanners
/// and people recognise a leaked Gantry token. It is stored as its SHA-256 only, looked up
/// by that digest, and the stored digest is compared again in constant time.
public enum APITokenSecret {
    public static let prefix = "gty_"

    public static func generate() -> (token: String, digest: Data) {
        let token = prefix + SecretDigest.random256Hex()
        return (token, digest(token))
    }

    /// An id safe to show and log: `tok_` and 12 hex digits.
    public static func newID() -> String {
        "tok_" + String(SecretDigest.random256Hex().prefix(12))
    }

    public static func digest(_ token: String) -> Data {
        SecretDigest.sha256(token)
    }
}
