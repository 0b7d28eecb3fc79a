import Foundation
import GRDB

/// One `secrets` row: a value sealed by `SecretBox` under the key `keyId` names. Nothing
/// here is the value in clear.
public struct StoredSecret: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "secrets"

    public var name: String
    /// `SecretScope.description`.
    public var scope: String
    public var sealed: Data
    public var keyId: String
    public var createdAt: Date
    public var updatedAt: Date
    public var updatedBy: String

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

/// Where sealed secrets are kept. Only the vault and `rotate-key` use it.
public protocol SecretStore: Sendable {
    func secrets() throws -> [StoredSecret]
    /// Inserts or replaces the row for (name, scope), keeping its `createdAt`.
    func save(_ secret: StoredSecret) throws
    /// Deletes (name, scope); false if there was no such row.
    func deleteSecret(name: String, scope: String) throws -> Bool
    /// Re-seals every row in one transaction: `reseal` gets each row and returns it
    /// sealed under the new key. Nothing changes if it throws for any row.
    func resealAll(_ reseal: (StoredSecret) throws -> StoredSecret) throws -> Int
}
