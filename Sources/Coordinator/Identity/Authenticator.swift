import Foundation
import GantryProtocol
import Synchronization

/// Turns a bearer token into the `Principal` it stands for, or says why it does not.
///
/// Runs on each request's own task (a point read by the token's SHA-256, a few tens of
/// microseconds), never on the coordinator's single writer. The bootstrap token in
/// `STATE/admin.token` is the first admin identity, `admin`: it works while that file
/// exists and the identity is not disabled, so an operator retires it by deleting the file
/// once other admins hold tokens.
public final class Authenticator: Sendable {
    public static let bootstrapIdentity = "admin"
    public static let bootstrapTokenID = "admin.token"

    let store: any IdentityStore
    let bootstrapDigest: Data?
    /// When each token's `last_used_at` was last written: at most once a minute per token,
    /// so a busy script does not turn every read into a write.
    private let lastWritten = Mutex<[String: Date]>([:])

    public init(store: any IdentityStore, bootstrapToken: String?) {
        self.store = store
        self.bootstrapDigest = bootstrapToken.map(APITokenSecret.digest)
    }

    public enum Failure: Error, Equatable {
        case missing
        case unknown
        case expired(String)
        case revoked(String)
        case disabled(String)

        public var message: String {
            switch self {
            case .missing:
                return "missing bearer token: pass --token, set GANTRY_TOKEN, or run `gantry login`"
            case .unknown:
                return "unknown token: it was never issued here, or it is mistyped"
            case .expired(let id):
                return "token \(id) has expired: create a new one with `gantry token create`"
            case .revoked(let id):
                return "token \(id) was revoked"
            case .disabled(let name):
                return "identity \(name) is disabled"
            }
        }
    }

    /// The caller behind an `Authorization` header value.
    public func authenticate(header: String?, now: Date = Date()) -> Result<Principal, Failure> {
        guard let header, header.hasPrefix("Bearer ") else { return .failure(.missing) }
        let token = header.dropFirst("Bearer ".count).trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty, token.utf8.count <= 512 else { return .failure(.unknown) }
        let digest = APITokenSecret.digest(token)
        do {
            if let bootstrapDigest, SecretDigest.equal(digest, bootstrapDigest) {
                return try principal(identity: Self.bootstrapIdentity, tokenID: Self.bootstrapTokenID)
            }
            guard let stored = try store.token(digest: digest),
                SecretDigest.equal(stored.hash, digest)
            else { return .failure(.unknown) }
            if stored.revokedAt != nil { return .failure(.revoked(stored.id)) }
            if let expiry = stored.expiresAt, expiry <= now { return .failure(.expired(stored.id)) }
            let result = try principal(identity: stored.identity, tokenID: stored.id)
            if case .success = result { noteUse(stored.id, now) }
            return result
        } catch {
            return .failure(.unknown)
        }
    }

    private func principal(identity name: String, tokenID: String) throws -> Result<Principal, Failure> {
        guard let identity = try store.identity(named: name) else { return .failure(.unknown) }
        if identity.disabledAt != nil { return .failure(.disabled(name)) }
        return .success(Principal(identity: name, tokenID: tokenID, bindings: identity.bindings))
    }

    private func noteUse(_ id: String, _ now: Date) {
        let due = lastWritten.withLock { written -> Bool in
            if let last = written[id], now.timeIntervalSince(last) < 60 { return false }
            if written.count > 100_000 { written.removeAll() }
            written[id] = now
            return true
        }
        if due { try? store.markTokenUsed(id: id, at: now) }
    }

    /// Creates the bootstrap admin identity if it does not exist yet (at `serve` and on the
    /// host's `token create`), so `admin.token` keeps working after an upgrade.
    public static func ensureBootstrapIdentity(in store: any IdentityStore, now: Date = Date()) throws {
        guard try store.identity(named: bootstrapIdentity) == nil else { return }
        try store.save(
            StoredIdentity(
                name: bootstrapIdentity, kind: .service, bindings: [API.RoleBinding(role: .admin)], createdAt: now,
                createdBy: "gantry-coordinator"))
    }
}
