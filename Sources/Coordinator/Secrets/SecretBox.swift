import Crypto
import Foundation

/// Seals and opens one secret value with AES-256-GCM.
///
/// The authenticated data binds the value to its name and scope: a row's `sealed` bytes
/// copied onto another row (say, from `environment:staging` to `environment:production`,
/// or from `NPM_TOKEN` to `DEPLOY_TOKEN`) by someone who can write the database but not
/// read the key fail to open, instead of handing one step another's credential.
public enum SecretBox {
    /// Versioned, so a later format can be told apart.
    static let domain = "gantry-secret-v1"

    static func authenticatedData(name: String, scope: SecretScope) -> Data {
        Data((domain + "\u{0}" + name + "\u{0}" + scope.description).utf8)
    }

    /// Nonce, ciphertext and tag in one blob (`AES.GCM.SealedBox.combined`); a fresh
    /// random nonce for every seal.
    public static func seal(_ value: String, name: String, scope: SecretScope, key: SecretKey) throws -> Data {
        let box = try AES.GCM.seal(
            Data(value.utf8), using: key.key, authenticating: authenticatedData(name: name, scope: scope))
        guard let combined = box.combined else { throw SecretBoxError.cannotOpen(name: name, scope: scope.description) }
        return combined
    }

    public static func open(_ sealed: Data, name: String, scope: SecretScope, key: SecretKey) throws(SecretBoxError) -> String {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            let plain = try AES.GCM.open(box, using: key.key, authenticating: authenticatedData(name: name, scope: scope))
            guard let text = String(data: plain, encoding: .utf8) else {
                throw SecretBoxError.cannotOpen(name: name, scope: scope.description)
            }
            return text
        } catch {
            throw .cannotOpen(name: name, scope: scope.description)
        }
    }
}

public enum SecretBoxError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(name: String, scope: String)

    public var description: String {
        switch self {
        case .cannotOpen(let name, let scope):
            return "the stored secret \(name) (\(scope)) does not open with its key: the row was altered or moved, "
                + "or the key file was replaced; set the secret again"
        }
    }
}
