import GantryProtocol

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a killed agent left on the host, reclaimed when the next agent starts on the same
/// work root and state directory (issue 13, retention).
///
/// Ownership is proven by `AttemptLock`s, never guessed from names or ages. An agent takes
/// `WORKROOT/<job>-<attempt>.lock` before it creates anything for the attempt and lets go
/// of it after removing everything, so at a start:
///
/// - `<key>.lock` that nobody holds: the agent that made it is gone; `<key>` and every
///   `<key>.<suffix>` sibling (`.ca.pem`, `.home-XXXXXX`, `.cache.tgz`, …) go, the lock last.
/// - a held lock: a live slot sharing the work root, or this process, holds the attempt:
///   everything of it stays.
/// - no lock file at all: kept. It is a `--keep-work-dirs` dir (its lock is removed at
///   the end of the job on purpose), or an agent older than this one made it.
///
/// Spool dirs work the same way, one lock per slot (`STATE/spool/<name>_<slot>.lock`,
/// held for the process's life): the dir of a slot nobody runs (say an old `pid-<pid>`
/// slot) goes whole, and this slot's own spool files go unless this process holds their
/// attempt. A fresh process holds no attempt (the coordinator re-queues what its
/// predecessor held), so at start they all go; the `held` parameter keeps the decision
/// right if it ever runs later.
///
/// Git mirrors stay: they are a cache shared by every slot, and the lock files a killed
/// git leaves in one are removed under the mirror's own flock at its next checkout
/// (`SourceCheckout.removeStaleGitLocks`).
public enum LeftoverReclaim {
    public enum LockState: Sendable, Equatable {
        case held
        case free
    }

    /// The attempt key `<job>-<attempt>`, if `name` is one (a lease's job id as
    /// `CoordinatorValueChecks` accepts it, a dash, a decimal attempt).
    public static func isAttemptKey(_ name: Substring) -> Bool {
        guard let dash = name.lastIndex(of: "-") else { return false }
        let attempt = name[name.index(after: dash)...]
        guard !attempt.isEmpty, attempt.count <= 10, attempt.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return false }
        return CoordinatorValueChecks.jobIDProblem(String(name[..<dash])) == nil
    }

    /// The names of a work root to remove, given the state of each attempt key's lock and
    /// the keys this process holds. Pure: the caller lists the directory and probes the
    /// locks. A name belongs to the longest key it equals or extends with `.`, so a job id
    /// with dots never lends its name to another attempt.
    public static func reclaimable(names: [String], locks: [String: LockState], held: Set<String>) -> [String] {
        let keys = locks.keys.filter { isAttemptKey(Substring($0)) }.sorted { $0.utf8.count > $1.utf8.count }
        return names.filter { name in
            guard let key = keys.first(where: { name == $0 || name.hasPrefix($0 + ".") }) else { return false }
            return locks[key] == .free && !held.contains(key)
        }
    }

    /// The spool files (`<job>-<attempt>.log`) of this slot's spool dir to remove: all but
    /// those of attempts this process holds.
    public static func reclaimableSpoolFiles(names: [String], held: Set<String>) -> [String] {
        names.filter { name in
            guard name.hasSuffix(".log") else { return false }
            let key = name.dropLast(4)
            return isAttemptKey(key) && !held.contains(String(key))
        }
    }

    /// The other slots' spool dirs (under `STATE/spool`) to remove whole: those with a
    /// `<dir>.lock` nobody holds. `own` is this slot's dir name.
    public static func reclaimableSpoolDirs(names: [String], locks: [String: LockState], own: String) -> [String] {
        names.filter { name in
            name != own && !name.hasSuffix(".lock") && locks[name] == .free
        }
    }

    public struct Reclaimed: Sendable, Equatable {
        public var entries = 0
        public var bytes: UInt64 = 0
    }

    /// Reclaims the work root: probes every `<key>.lock` (taking the free ones, so no one
    /// can start using the key while its entries go), removes what `reclaimable` names,
    /// the lock files last, then lets go.
    public static func reclaimWorkRoot(_ workRoot: String, held: Set<String>) -> Reclaimed {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: workRoot)) ?? []
        var locks: [String: LockState] = [:]
        var taken: [AttemptLock] = []
        for name in names where name.hasSuffix(".lock") {
            let key = String(name.dropLast(5))
            guard isAttemptKey(Substring(key)) else { continue }
            if !held.contains(key), let lock = AttemptLock.take("\(workRoot)/\(name)") {
                locks[key] = .free
                taken.append(lock)
            } else {
                locks[key] = .held
            }
        }
        var reclaimed = Reclaimed()
        for name in reclaimable(names: names, locks: locks, held: held) where !name.hasSuffix(".lock") {
            reclaimed.bytes += remove("\(workRoot)/\(name)")
            reclaimed.entries += 1
        }
        for lock in taken {
            lock.release()
            reclaimed.entries += 1
        }
        return reclaimed
    }

    /// Reclaims this slot's spool files and the spool dirs of slots nobody runs. `own` is
    /// this slot's spool dir, locked by the caller for the process's life.
    /// `siblings`: also look at the other slots' dirs next to `own` (only under the state
    /// directory's `spool`, never a parent someone passed by hand).
    public static func reclaimSpool(own: String, held: Set<String>, siblings scanSiblings: Bool) -> Reclaimed {
        var reclaimed = Reclaimed()
        let files = (try? FileManager.default.contentsOfDirectory(atPath: own)) ?? []
        for name in reclaimableSpoolFiles(names: files, held: held) {
            reclaimed.bytes += remove("\(own)/\(name)")
            reclaimed.entries += 1
        }
        let parent = AgentDirectories.parentDirectory(of: own)
        let ownName = String(own.dropFirst(parent.utf8.count + 1))
        guard scanSiblings, !parent.isEmpty, let siblings = try? FileManager.default.contentsOfDirectory(atPath: parent) else {
            return reclaimed
        }
        var locks: [String: LockState] = [:]
        var taken: [String: AttemptLock] = [:]
        for name in siblings where name.hasSuffix(".lock") {
            let slot = String(name.dropLast(5))
            guard slot != ownName, siblings.contains(slot) else { continue }
            if let lock = AttemptLock.take("\(parent)/\(name)") {
                locks[slot] = .free
                taken[slot] = lock
            } else {
                locks[slot] = .held
            }
        }
        for name in reclaimableSpoolDirs(names: siblings, locks: locks, own: ownName) {
            reclaimed.bytes += remove("\(parent)/\(name)")
            reclaimed.entries += 1
        }
        for lock in taken.values { lock.release() }
        return reclaimed
    }

    /// Removes `path` (a file or a whole tree, links not followed) and returns the bytes
    /// it occupied on disk.
    static func remove(_ path: String) -> UInt64 {
        // A killed agent's overlay on a work dir (`MountedTree`): detached first, or the
        // removal would go through it into its upper layer and then fail on the mount point.
        OverlayMount.detachAll(atOrUnder: path)
        let bytes = diskUsage(path)
        try? FileManager.default.removeItem(atPath: path)
        return bytes
    }

    /// The blocks under `path`, in bytes, bounded to a million entries.
    static func diskUsage(_ path: String) -> UInt64 {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        var total = UInt64(max(info.st_blocks, 0)) * 512
        guard (info.st_mode & S_IFMT) == S_IFDIR else { return total }
        for sub in ((try? FileManager.default.subpathsOfDirectory(atPath: path)) ?? []).prefix(1_000_000) {
            var child = stat()
            if lstat("\(path)/\(sub)", &child) == 0 { total += UInt64(max(child.st_blocks, 0)) * 512 }
        }
        return total
    }
}
