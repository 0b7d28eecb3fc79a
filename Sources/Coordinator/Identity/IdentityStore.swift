import Foundation

/// Identities and their API tokens. Every method commits before it returns; reads serve
/// each API request's authentication (a point read by the token's digest), so a token
/// revoked by `gantry token revoke` or on the host is refused from the next request.
public protocol IdentityStore: Sendable {
    func identity(named name: String) throws -> StoredIdentity?
    func identities() throws -> [StoredIdentity]
    /// Inserts or replaces (by name).
    func save(_ identity: StoredIdentity) throws
    /// Marks the identity disabled and revokes every token it holds, in one transaction.
    func disableIdentity(named name: String, at date: Date) throws -> Bool

    func insert(_ token: StoredAPIToken) throws
    func token(digest: Data) throws -> StoredAPIToken?
    func tokens(identity: String) throws -> [StoredAPIToken]
    /// Revokes the token if it belongs to `identity` (any identity when nil); false when
    /// there is no such unrevoked token.
    func revokeToken(id: String, identity: String?, at date: Date) throws -> Bool
    func markTokenUsed(id: String, at date: Date) throws
}
