import Foundation
import GantryProtocol
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The coordinator's secrets, decrypted, in memory: loaded once at start, changed only by
/// `set` and `delete` (the API), read for every lease that names secrets.
///
/// Building a lease then costs a dictionary lookup under a lock, never a decryption or a
/// database read on the core's single writer. The values never leave this object except
/// into a lease's `secrets` map at the moment it is sent (`CoordinatorCore.perform`); the
/// API lists names, scopes and dates only.
public final class SecretVault: Sendable {
    /// What is known about one (name, scope), value included.
    struct Entry: Sendable {
        var value: String
        var createdAt: Date
        var updatedAt: Date
        var updatedBy: String
    }

    private let store: (any SecretStore)?
    /// Internal for the webhook secrets (`SecretVault+Webhooks`), sealed by the same key.
    let key: SecretKey?
    /// name → scope → entry.
    private let entries: Mutex<[String: [SecretScope: Entry]]>
    /// Every key the state directory holds, by id (the current one, and the others a
    /// rotation cut short left): what a sealed row that names one opens with.
    let keyRing: [String: SecretKey]
    /// Serializes `set` and `delete`, so the database and `entries` change in one order.
    private let writes = Mutex<Void>(())
    /// The shared `flock` on `secrets.key` that keeps `rotate-key` away while serving.
    private let lockDescriptor: Int32?
    /// Job tokens and the API endpoint every lease carries: their key is derived from
    /// this vault's key (`JobTokenKey`), and the send edge that fills `Lease.secrets` from
    /// this vault fills `Lease.job_token` from here too.
    public let jobTokens: JobTokens

    /// A vault with no secrets that refuses to store any: for a core built without one
    /// (tests, tools).
    public static func empty() -> SecretVault {
        SecretVault(store: nil, key: nil, entries: [:], lockDescriptor: nil, jobTokens: JobTokens(key: .ephemeral()), keyRing: [:])
    }

    private init(
        store: (any SecretStore)?, key: SecretKey?, entries: [String: [SecretScope: Entry]], lockDescriptor: Int32?,
        jobTokens: JobTokens, keyRing: [String: SecretKey]
    ) {
        self.keyRing = keyRing
        self.jobTokens = jobTokens
        self.store = store
        self.key = key
        self.entries = Mutex(entries)
        self.lockDescriptor = lockDescriptor
    }

    deinit {
        if let lockDescriptor { close(lockDescriptor) }
    }

    /// The vault `serve` uses: the key from the state directory (created if the directory
    /// predates secrets), a shared lock on it for as long as the vault lives, and every
    /// stored secret opened with the key its row names.
    public static func open(state: CoordinatorStateDirectory, store: any SecretStore, logger: Logger) throws -> SecretVault {
        let files = SecretKeyFiles(state: state)
        let key = try files.loadOrCreate(logger: logger)
        let descriptor = try files.lock(exclusive: false)
        do {
            return try load(store: store, key: key, ring: try files.ring(), logger: logger, lockDescriptor: descriptor)
        } catch {
            close(descriptor)
            throw error
        }
    }

    /// A vault over `store` sealing under `key` (tests; `open` for the real thing).
    public static func load(
        store: any SecretStore, key: SecretKey, ring: [String: SecretKey] = [:], logger: Logger,
        lockDescriptor: Int32? = nil
    ) throws -> SecretVault {
        var keys = ring
        keys[key.id] = key
        var loaded: [String: [SecretScope: Entry]] = [:]
        for row in try store.secrets() {
            // One unreadable row must not keep the coordinator (and every other secret)
            // down: it is logged, left in place, and steps needing it are refused at
            // submission as if it were not set.
            do throws(any Error) {
                let scope = try SecretScope(parsing: row.scope)
                guard let rowKey = keys[row.keyId] else {
                    throw SecretKeyError.noKeyFor(name: row.name, scope: row.scope, keyID: row.keyId)
                }
                let value = try SecretBox.open(row.sealed, name: row.name, scope: scope, key: rowKey)
                loaded[row.name, default: [:]][scope] = Entry(
                    value: value, createdAt: row.createdAt, updatedAt: row.updatedAt, updatedBy: row.updatedBy)
            } catch {
                logger.error(
                    "a stored secret cannot be opened; steps that need it are refused until it is set again",
                    metadata: ["secret": "\(row.name)", "scope": "\(row.scope.logSafe(maximum: 100))", "error": "\(error)"])
            }
        }
        return SecretVault(
            store: store, key: key, entries: loaded, lockDescriptor: lockDescriptor,
            jobTokens: JobTokens(key: JobTokenKey(derivedFrom: key)), keyRing: keys)
    }

    // MARK: - Changes (the API)

    /// Seals and stores `value` for (name, scope), replacing any earlier value; true if it
    /// is new. Checks the name and value first (`SecretValueRule`).
    @discardableResult
    public func set(name: String, scope: SecretScope, value: String, by identity: String, now: Date = Date()) throws -> Bool {
        try SecretValueRule.check(name: name, value: value)
        guard let store, let key else { throw SecretVaultError.readOnly }
        let sealed = try SecretBox.seal(value, name: name, scope: scope, key: key)
        return try writes.withLock { _ in
            let existing = entries.withLock { $0[name]?[scope] }
            try store.save(
                StoredSecret(
                    name: name, scope: scope.description, sealed: sealed, keyId: key.id,
                    createdAt: existing?.createdAt ?? now, updatedAt: now, updatedBy: identity))
            entries.withLock {
                $0[name, default: [:]][scope] = Entry(
                    value: value, createdAt: existing?.createdAt ?? now, updatedAt: now, updatedBy: identity)
            }
            return existing == nil
        }
    }

    /// Deletes (name, scope); false if no such secret.
    public func delete(name: String, scope: SecretScope) throws -> Bool {
        guard let store else { throw SecretVaultError.readOnly }
        return try writes.withLock { _ in
            let deleted = try store.deleteSecret(name: name, scope: scope.description)
            entries.withLock {
                $0[name]?[scope] = nil
                if $0[name]?.isEmpty == true { $0[name] = nil }
            }
            return deleted
        }
    }

    // MARK: - Reads

    /// Every secret's name, scope and dates, sorted; never a value.
    public func list() -> [SecretInfo] {
        entries.withLock { entries in
            entries.flatMap { name, scopes in
                scopes.map { scope, entry in
                    SecretInfo(
                        name: name, scope: scope, createdAt: entry.createdAt, updatedAt: entry.updatedAt, updatedBy: entry.updatedBy)
                }
            }
        }.sorted { ($0.name, $0.scope.description) < ($1.name, $1.scope.description) }
    }

    /// The values a step gets for the names it lists, each from the most specific scope
    /// that applies (`SecretScope.precedence`), and the names no applicable scope holds.
    public func resolve(_ names: [String], repository: String, environment: String?) -> (values: [String: String], missing: [String]) {
        guard !names.isEmpty else { return ([:], []) }
        let scopes = SecretScope.precedence(repository: repository, environment: environment)
        return entries.withLock { entries in
            var values: [String: String] = [:]
            var missing: [String] = []
            for name in names {
                let held = entries[name]
                if let value = scopes.lazy.compactMap({ held?[$0]?.value }).first {
                    values[name] = value
                } else {
                    missing.append(name)
                }
            }
            return (values, missing)
        }
    }
}

/// A secret as the API lists it: never its value.
public struct SecretInfo: Sendable, Equatable {
    public var name: String
    public var scope: SecretScope
    public var createdAt: Date
    public var updatedAt: Date
    public var updatedBy: String
}

public enum SecretVaultError: Error, CustomStringConvertible {
    case readOnly

    public var description: String {
        "this coordinator was started without a secrets store, so secrets cannot be set or deleted"
    }
}
