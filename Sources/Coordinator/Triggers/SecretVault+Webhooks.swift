import Crypto
import Foundation

/// Projects' webhook secrets, sealed like secrets (`SecretBox`, the vault's key), but
/// never in the vault's entries: no step can name one in `secrets:`.
extension SecretVault {
    /// A new random secret (32 bytes, hex) and its sealed form under the current key.
    func newWebhookSecret(project: String) throws -> (secret: String, sealed: Data, keyID: String) {
        guard let key else { throw SecretVaultError.readOnly }
        let secret = SymmetricKey(size: .bits256).withUnsafeBytes { bytes in
            bytes.map { String(format: "%02x", $0) }.joined()
        }
        let sealed = try SecretBox.seal(secret, name: StoredProject.secretName(project), scope: .pipeline, key: key)
        return (secret, sealed, key.id)
    }

    /// The project's secret in clear, to check a delivery's signature with, opened with
    /// the key its row names (the current one, or one a rotation cut short left).
    func webhookSecret(of project: StoredProject) throws -> String {
        guard let key = keyRing[project.keyId] ?? (key?.id == project.keyId ? key : nil) else {
            throw SecretKeyError.noKeyFor(name: StoredProject.secretName(project.name), scope: "pipeline", keyID: project.keyId)
        }
        return try SecretBox.open(project.sealedSecret, name: StoredProject.secretName(project.name), scope: .pipeline, key: key)
    }
}
