import Crypto
import Foundation

/// How a notification is signed (docs/security.md, "Notification signatures"): the
/// receiver recomputes `HMAC-SHA256(secret, "<timestamp>.<body>")` and compares it in
/// constant time with `X-Gantry-Signature-256: sha256=<hex>`, and refuses a timestamp
/// (`X-Gantry-Timestamp`, Unix seconds) too far from its clock. Putting the timestamp in
/// the signed material is what stops a captured request being replayed later: the body
/// alone (GitHub's scheme) verifies forever. Pure: no clock, no I/O.
public enum NotificationSignature {
    public static let signatureHeader = "X-Gantry-Signature-256"
    public static let timestampHeader = "X-Gantry-Timestamp"
    public static let eventHeader = "X-Gantry-Event"
    public static let deliveryHeader = "X-Gantry-Delivery"

    /// The material that is signed: the decimal timestamp, a `.`, then the body's bytes.
    static func material(timestamp: Int64, body: [UInt8]) -> [UInt8] {
        Array("\(timestamp).".utf8) + body
    }

    /// `sha256=<64 lowercase hex digits>`.
    public static func sign(body: [UInt8], timestamp: Int64, secret: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(
            for: material(timestamp: timestamp, body: body), using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256=" + code.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// What a receiver does: the signature matches and the timestamp is within
    /// `tolerance` seconds of `now`. The comparison is constant-time.
    public static func verify(
        body: [UInt8], timestamp: Int64, signature: String, secret: String, now: Int64, tolerance: Int64 = 300
    ) -> Bool {
        guard abs(now - timestamp) <= tolerance else { return false }
        let expected = Array(sign(body: body, timestamp: timestamp, secret: secret).utf8)
        let given = Array(signature.utf8)
        guard expected.count == given.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(expected, given) { difference |= a ^ b }
        return difference == 0
    }
}
