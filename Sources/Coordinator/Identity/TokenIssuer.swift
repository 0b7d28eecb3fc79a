import Foundation

/// Issues API tokens for an identity: the one path used by the API (`gantry token
/// create`) and by the host (`gantry-coordinator token create`), so both apply the same
/// lifetime rules.
public enum TokenIssuer {
    public static let defaultLifetime: TimeInterval = 90 * 86_400
    public static let maximumLifetime: TimeInterval = 366 * 86_400
    public static let maximumDescriptionLength = 256
    /// Unrevoked, unexpired tokens one identity may hold: far above any real use, and a
    /// bound on the rows (and audit records) a viewer can create for itself.
    public static let maximumLiveTokens = 100

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case badLifetime
        case badDescription
        case noSuchIdentity(String)
        case disabled(String)
        case tooManyTokens(String)

        public var description: String {
            switch self {
            case .badLifetime: return "a token lives 60 seconds to 366 days"
            case .badDescription:
                return "a token description is at most \(maximumDescriptionLength) characters without control characters"
            case .noSuchIdentity(let name): return "no identity named \(name)"
            case .disabled(let name): return "identity \(name) is disabled"
            case .tooManyTokens(let name):
                return "\(name) already holds \(maximumLiveTokens) live tokens: revoke unused ones (`gantry token list`, `gantry token revoke`)"
            }
        }
    }

    /// Creates and stores a token; returns it with the secret, which is never stored.
    public static func issue(
        for identity: String, description: String?, lifetime: TimeInterval?, in store: any IdentityStore, now: Date = Date()
    ) throws -> (token: StoredAPIToken, secret: String) {
        let lifetime = lifetime ?? defaultLifetime
        guard (60...maximumLifetime).contains(lifetime) else { throw Failure.badLifetime }
        let description = description ?? ""
        guard description.count <= maximumDescriptionLength, !description.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { throw Failure.badDescription }
        guard let stored = try store.identity(named: identity) else { throw Failure.noSuchIdentity(identity) }
        guard stored.disabledAt == nil else { throw Failure.disabled(identity) }
        guard try store.tokens(identity: identity).filter({ $0.isUsable(at: now) }).count < maximumLiveTokens else {
            throw Failure.tooManyTokens(identity)
        }
        let (secret, digest) = APITokenSecret.generate()
        let token = StoredAPIToken(
            id: APITokenSecret.newID(), identity: identity, hash: digest, description: description, createdAt: now,
            expiresAt: now.addingTimeInterval(lifetime), revokedAt: nil, lastUsedAt: nil)
        try store.insert(token)
        return (token, secret)
    }
}
