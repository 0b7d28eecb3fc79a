import Crypto
import Foundation

/// Who sent a webhook and whether it holds the project's secret, from the request's
/// headers and its body as received (pure: no store, no clock).
///
/// - GitHub: `X-Hub-Signature-256: sha256=HEX`, HMAC-SHA256 of the body under the secret;
///   `X-GitHub-Event`, `X-GitHub-Delivery`.
/// - Gitea and Forgejo: `X-Gitea-Signature: HEX` (same HMAC); `X-Gitea-Event`,
///   `X-Gitea-Delivery`. Forgejo also sends the `X-Forgejo-*` and GitHub's headers.
/// - GitLab: `X-Gitlab-Token: SECRET`, the secret itself (GitLab does not sign);
///   `X-Gitlab-Event`, `X-Gitlab-Event-UUID` (or `Idempotency-Key`).
///
/// Comparisons take the same time whatever the bytes (`constantTimeEquals`), so timing
/// does not tell a sender how much of a guess was right.
public enum WebhookSignature {
    public enum Sender: String, Sendable, Equatable {
        case github
        case gitea
        case gitlab
    }

    public struct Verified: Sendable, Equatable {
        public var sender: Sender
        /// The sender's event name (`push`, `Push Hook`, `ping`, …).
        public var event: String
        /// The sender's id of this delivery, or the body's sha256 when it sends none, so a
        /// replay of the same body is still recognised.
        public var deliveryID: String
    }

    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        case missing
        case malformed(String)
        case mismatch(Sender)

        public var description: String {
            switch self {
            case .missing:
                return "no signature: send X-Hub-Signature-256 (GitHub), X-Gitea-Signature (Gitea, Forgejo) or "
                    + "X-Gitlab-Token (GitLab) made with the project's webhook secret"
            case .malformed(let why): return "the signature header is malformed: \(why)"
            case .mismatch(let sender): return "the \(sender.rawValue) signature does not match the project's webhook secret"
            }
        }
    }

    /// Longest delivery id used; a longer one is replaced by the body's digest (ids are
    /// UUIDs or hex in practice).
    static let maximumDeliveryIDBytes = 128

    /// `headers`: names lower-cased.
    public static func verify(headers: [String: String], body: [UInt8], secret: String) -> Result<Verified, Refusal> {
        let key = SymmetricKey(data: Array(secret.utf8))
        if let header = headers["x-hub-signature-256"] ?? headers["x-gitea-signature"] {
            let isGitHub = headers["x-hub-signature-256"] != nil && headers["x-gitea-event"] == nil
            let sender: Sender = isGitHub ? .github : .gitea
            var hex = Substring(header.trimmingCharacters(in: .whitespaces))
            if headers["x-hub-signature-256"] != nil {
                guard hex.hasPrefix("sha256=") else { return .failure(.malformed("X-Hub-Signature-256 must start with `sha256=`")) }
                hex = hex.dropFirst("sha256=".count)
            }
            guard let given = bytes(hex: hex), given.count == 32 else {
                return .failure(.malformed("expected 64 hexadecimal digits of HMAC-SHA256"))
            }
            let expected = Array(HMAC<SHA256>.authenticationCode(for: body, using: key))
            guard constantTimeEquals(given, expected) else { return .failure(.mismatch(sender)) }
            let event = headers[isGitHub ? "x-github-event" : "x-gitea-event"] ?? headers["x-github-event"] ?? ""
            let delivery = headers[isGitHub ? "x-github-delivery" : "x-gitea-delivery"] ?? headers["x-github-delivery"]
            return .success(Verified(sender: sender, event: event, deliveryID: deliveryID(delivery, body: body)))
        }
        if let token = headers["x-gitlab-token"] {
            guard constantTimeEquals(Array(SHA256.hash(data: Array(token.utf8))), Array(SHA256.hash(data: Array(secret.utf8))))
            else { return .failure(.mismatch(.gitlab)) }
            let delivery = headers["x-gitlab-event-uuid"] ?? headers["idempotency-key"]
            return .success(
                Verified(sender: .gitlab, event: headers["x-gitlab-event"] ?? "", deliveryID: deliveryID(delivery, body: body)))
        }
        return .failure(.missing)
    }

    /// The sender's id (trimmed; printable ASCII of at most `maximumDeliveryIDBytes`,
    /// else not used) or `sha256:<digest of body>`.
    static func deliveryID(_ header: String?, body: [UInt8]) -> String {
        if let header {
            let id = header.trimmingCharacters(in: .whitespaces)
            if !id.isEmpty, id.utf8.count <= maximumDeliveryIDBytes, id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
                return id
            }
        }
        return "sha256:" + sha256Hex(body)
    }

    static func sha256Hex(_ body: [UInt8]) -> String {
        SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
    }

    static func bytes(hex: Substring) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0, digits.count <= 256 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case 0x30...0x39: return digit - 0x30
        case 0x61...0x66: return digit - 0x61 + 10
        case 0x41...0x46: return digit - 0x41 + 10
        default: return nil
        }
    }

    /// Equal length and bytes, in time that depends only on the length.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
