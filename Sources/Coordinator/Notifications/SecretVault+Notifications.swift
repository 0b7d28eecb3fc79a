import Crypto
import Foundation

/// Notification endpoints' signing secrets, sealed like projects' webhook secrets
/// (`SecretBox` under the secrets key, named `notification:ID`), never in the vault's
/// entries, so no step can name one in `secrets:`.
extension SecretVault {
    /// A new random secret (`gns_` and 32 bytes in hex) and its sealed form.
    func newNotificationSecret(id: String) throws -> (secret: String, sealed: Data, keyID: String) {
        guard let key else { throw SecretVaultError.readOnly }
        let secret = "gns_" + SymmetricKey(size: .bits256).withUnsafeBytes { bytes in
            bytes.map { String(format: "%02x", $0) }.joined()
        }
        let sealed = try SecretBox.seal(secret, name: StoredNotificationEndpoint.secretName(id), scope: .pipeline, key: key)
        return (secret, sealed, key.id)
    }

    /// The endpoint's secret in clear, to sign with.
    func notificationSecret(of endpoint: StoredNotificationEndpoint) throws -> String {
        let name = StoredNotificationEndpoint.secretName(endpoint.id)
        guard let key = keyRing[endpoint.keyId] ?? (key?.id == endpoint.keyId ? key : nil) else {
            throw SecretKeyError.noKeyFor(name: name, scope: "pipeline", keyID: endpoint.keyId)
        }
        return try SecretBox.open(endpoint.sealedSecret, name: name, scope: .pipeline, key: key)
    }
}
