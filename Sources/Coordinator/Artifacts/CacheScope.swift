import Foundation

/// Where caches live and who may read them: a pure value, so the rules that keep one
/// branch from poisoning another's cache are unit-tested without a store.
///
/// A job writes only its own branch's scope (`branch:NAME`). It reads its own scope
/// first, then the default branch's: a feature branch starts warm from `main`'s cache,
/// but what it saves lands in its own scope, where `main` never looks.
public struct CacheScope: Sendable, Equatable, Hashable {
    public var name: String

    public init(branch: String) {
        name = "branch:" + branch
    }

    public init(name: String) {
        self.name = name
    }

    /// The scopes a job on `branch` reads, in order of preference; none without a
    /// branch (`hasScope`).
    public static func readable(branch: String, defaultBranch: String) -> [CacheScope] {
        guard hasScope(branch: branch) else { return [] }
        let own = CacheScope(branch: branch)
        let shared = CacheScope(branch: defaultBranch)
        return own == shared ? [own] : [own, shared]
    }

    /// The one scope a job on `branch` writes; nil without a branch.
    public static func writable(branch: String) -> CacheScope? {
        hasScope(branch: branch) ? CacheScope(branch: branch) : nil
    }

    /// A pipeline submitted without a branch has no cache: its scope would be `branch:`,
    /// one scope shared by every branchless submission whoever made it, so anything able
    /// to submit without `--branch` could poison what the others restore.
    public static func hasScope(branch: String) -> Bool { !branch.isEmpty }
}

/// One cache row as the resolution and eviction rules see it.
public struct CacheCandidate: Sendable, Equatable {
    public var scope: String
    public var key: String
    public var size: UInt64
    public var createdAt: Date
    public var lastUsedAt: Date

    public init(scope: String, key: String, size: UInt64, createdAt: Date, lastUsedAt: Date) {
        self.scope = scope
        self.key = key
        self.size = size
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
    }
}

public enum CacheResolution {
    /// The entry to restore: `key` exactly, scope by scope; else, for each restore key in
    /// order, the newest entry whose key starts with it, scope by scope. `exact` tells
    /// the job it need not save.
    public static func resolve(
        key: String, restoreKeys: [String], scopes: [CacheScope], entries: [CacheCandidate]
    ) -> (entry: CacheCandidate, exact: Bool)? {
        for scope in scopes {
            if let hit = entries.first(where: { $0.scope == scope.name && $0.key == key }) { return (hit, true) }
        }
        for prefix in restoreKeys where !prefix.isEmpty {
            for scope in scopes {
                let matches = entries.filter { $0.scope == scope.name && $0.key.hasPrefix(prefix) }
                if let newest = matches.max(by: { ($0.createdAt, $0.key) < ($1.createdAt, $1.key) }) { return (newest, false) }
            }
        }
        return nil
    }

    /// The keys to evict from one scope so that its entries, `kept` included, fit in
    /// `limit`: least recently used first, never `kept` itself (the entry just saved).
    public static func evictions(in entries: [CacheCandidate], limit: UInt64, kept: String) -> [String] {
        var total = entries.reduce(UInt64(0)) { $0 + $1.size }
        var evicted: [String] = []
        for entry in entries.sorted(by: { ($0.lastUsedAt, $0.key) < ($1.lastUsedAt, $1.key) }) where total > limit {
            guard entry.key != kept else { continue }
            total -= entry.size
            evicted.append(entry.key)
        }
        return evicted
    }
}
