import Foundation
import GantryProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `gantry-coordinator rotate-key`: re-seals every secret under a new key and makes it the
/// current one. Offline: it refuses while a coordinator serves from the directory (the
/// `flock` in `SecretKeyFiles`), because that coordinator would keep sealing under the old
/// key; stop it, rotate, start it.
///
/// The order makes every crash recoverable by running it again:
/// 1. the new key is written to `secrets.key.new` (or, if a rotation stopped half-way,
///    the key already there is reused, so rows it already sealed stay readable);
/// 2. every row is opened with the key its `key_id` names and sealed under the new key,
///    in one transaction;
/// 3. the current key is copied to `secrets.key.old`, `secrets.key.new` renamed over
///    `secrets.key` (atomic), and `secrets.key.old` removed.
/// Until step 3 ends, `serve` opens any row with whichever of the three keys it names.
public enum SecretKeyRotation {
    public struct Result: Sendable, Equatable {
        public var previousKeyID: String
        public var newKeyID: String
        public var resealed: Int
    }

    public static func rotate(
        state: CoordinatorStateDirectory, store: any SecretStore, projects: (any ProjectStore)? = nil
    ) throws -> Result {
        let files = SecretKeyFiles(state: state)
        guard FileManager.default.fileExists(atPath: files.current) else {
            throw SecretKeyError.unreadable(files.current, "no such file; `gantry-coordinator serve` creates it")
        }
        let descriptor = try files.lock(exclusive: true)
        defer { close(descriptor) }
        let previous = try SecretKey.read(from: files.current)
        var ring = try files.ring()
        let next: SecretKey
        if FileManager.default.fileExists(atPath: files.next) {
            next = try SecretKey.read(from: files.next)
        } else {
            next = SecretKey.generate()
            try next.write(to: files.next)
        }
        ring[next.id] = next
        let count = try store.resealAll { row in
            let scope = try SecretScope(parsing: row.scope)
            guard let key = ring[row.keyId] else {
                throw SecretKeyError.noKeyFor(name: row.name, scope: row.scope, keyID: row.keyId)
            }
            var resealed = row
            resealed.sealed = try SecretBox.seal(
                try SecretBox.open(row.sealed, name: row.name, scope: scope, key: key), name: row.name, scope: scope, key: next)
            resealed.keyId = next.id
            return resealed
        }
        // Projects' webhook secrets, sealed by the same key (`SecretVault+Webhooks`). In a
        // transaction of their own: a crash between the two leaves rows under both keys,
        // which running the rotation again (with the same new key) finishes.
        _ = try projects?.resealWebhookSecrets { row in
            let name = StoredProject.secretName(row.name)
            guard let key = ring[row.keyId] else { throw SecretKeyError.noKeyFor(name: name, scope: "pipeline", keyID: row.keyId) }
            var resealed = row
            resealed.sealedSecret = try SecretBox.seal(
                try SecretBox.open(row.sealedSecret, name: name, scope: .pipeline, key: key), name: name, scope: .pipeline, key: next)
            resealed.keyId = next.id
            return resealed
        }
        // Notification endpoints' signing secrets (`SecretVault+Notifications`), likewise.
        _ = try (projects as? any NotificationStore)?.resealNotificationSecrets { row in
            let name = StoredNotificationEndpoint.secretName(row.id)
            guard let key = ring[row.keyId] else { throw SecretKeyError.noKeyFor(name: name, scope: "pipeline", keyID: row.keyId) }
            var resealed = row
            resealed.sealedSecret = try SecretBox.seal(
                try SecretBox.open(row.sealedSecret, name: name, scope: .pipeline, key: key), name: name, scope: .pipeline, key: next)
            resealed.keyId = next.id
            return resealed
        }
        try previous.write(to: files.previous)
        guard rename(files.next, files.current) == 0 else {
            throw SecretKeyError.unreadable(files.next, "cannot rename it to \(files.current): \(String(cString: strerror(errno)))")
        }
        SecureFile.syncDirectory(of: files.current)
        unlink(files.previous)
        return Result(previousKeyID: previous.id, newKeyID: next.id, resealed: count)
    }
}
