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

/// Removes mirrors no checkout has used for a long time (`--git-mirrors-max-idle`).
///
/// A host keeps one mirror per repository it ever checked out, and a mirror is as large
/// as the repository's history: without this, a build host that once built a large
/// repository keeps it forever. Each checkout marks its mirror as used by touching the
/// mirror's lock file (`MirrorLock.acquire`); a mirror whose lock file is older than the
/// bound is removed under that same lock, taken without waiting, so a slot using or
/// fetching into it keeps it. The lock file itself stays (it is empty): removing it
/// while another slot has it open would let two slots hold "the" lock on two files.
enum MirrorPrune {
    /// A mirror directory and when a checkout last used it (seconds since the epoch).
    struct Mirror: Equatable {
        var name: String
        var lastUsed: Int64
    }

    /// The mirrors idle for longer than `maximumIdle` seconds at `now`. Only names a
    /// mirror can have (`RepositoryURL.mirrorName`: 64 hex digits and `.git`) count.
    static func idle(_ mirrors: [Mirror], now: Int64, maximumIdle: Int64) -> [String] {
        mirrors.filter { isMirrorName($0.name) && isIdle(lastUsed: $0.lastUsed, now: now, maximumIdle: maximumIdle) }
            .map(\.name).sorted()
    }

    /// A file time is whatever was set on it (`touch -d`, a restored backup): its distance
    /// from now is computed without trapping on overflow; a time in the future is not idle.
    static func isIdle(lastUsed: Int64, now: Int64, maximumIdle: Int64) -> Bool {
        let (age, overflow) = now.subtractingReportingOverflow(lastUsed)
        return overflow ? lastUsed < 0 : age > maximumIdle
    }

    static func isMirrorName(_ name: String) -> Bool {
        let utf8 = Array(name.utf8)
        guard utf8.count == 68, name.hasSuffix(".git") else { return false }
        return utf8.prefix(64).allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// A mirror or its work trees moved aside to be removed (`<mirror>.trash-<pid>`,
    /// `<trees>.trash-<pid>`), left by a removal that was cut short.
    static func isTrashName(_ name: String) -> Bool {
        for suffix in [".git", ".trees"] {
            guard let range = name.firstRange(of: suffix + ".trash-") else { continue }
            let pid = name[range.upperBound...]
            return isMirrorName(String(name[..<range.lowerBound]) + ".git") && !pid.isEmpty && pid.allSatisfy(\.isNumber)
        }
        return false
    }

    /// Removes an idle mirror's work trees (`WorkTrees`) under the mirror's lock, unless a
    /// slot still has one of them (its lock cannot be taken).
    static func removeWorkTrees(of mirror: String) -> UInt64 {
        let trees = String(mirror.dropLast(".git".count)) + ".trees"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: trees)) ?? []).prefix(1_000)
        var locks: [WorkTreeLock] = []
        for name in names where name.hasSuffix(".lock") {
            guard let lock = WorkTreeLock.tryAcquire("\(trees)/\(name)", shared: false) else { return 0 }
            locks.append(lock)
        }
        let trash = "\(trees).trash-\(getpid())"
        guard rename(trees, trash) == 0 else { return 0 }
        return LeftoverReclaim.remove(trash)
    }

    /// What one pass removed.
    struct Removed: Equatable {
        var mirrors = 0
        var bytes: UInt64 = 0
    }

    /// Removes the idle mirrors in `directory`. Bounded to the first 10,000 entries.
    static func prune(_ directory: String, maximumIdle: Duration, now: Date = Date()) -> Removed {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).prefix(10_000)
        var removed = Removed()
        for name in names where isTrashName(name) {
            removed.bytes += LeftoverReclaim.remove("\(directory)/\(name)")
        }
        let seconds = maximumIdle.components.seconds
        let mirrors = names.filter(isMirrorName).compactMap { name in
            lastUsed(of: "\(directory)/\(name)").map { Mirror(name: name, lastUsed: $0) }
        }
        for name in idle(mirrors, now: Int64(now.timeIntervalSince1970), maximumIdle: seconds) {
            let path = "\(directory)/\(name)"
            let descriptor = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard descriptor >= 0 else { continue }
            defer { close(descriptor) }
            guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else { continue }
            defer { flock(descriptor, LOCK_UN) }
            // Used between the listing and the lock: keep it.
            guard let used = lastUsed(of: path), isIdle(lastUsed: used, now: Int64(now.timeIntervalSince1970), maximumIdle: seconds)
            else { continue }
            // Out of the way first, in one rename: a removal cut short (a crash, an error)
            // must not leave a mirror with its `HEAD` but not all its objects, which the
            // next checkout would take for a whole one. What is left of a trash dir goes at
            // the next start.
            let trash = "\(path).trash-\(getpid())"
            guard rename(path, trash) == 0 else { continue }
            removed.bytes += LeftoverReclaim.remove(trash)
            removed.bytes += removeWorkTrees(of: path)
            removed.mirrors += 1
        }
        return removed
    }

    /// The lock file's modification time, else the mirror directory's (a mirror from an
    /// agent before the lock was touched on use).
    static func lastUsed(of mirror: String) -> Int64? {
        var info = stat()
        if lstat(mirror + ".lock", &info) == 0 { return Int64(info.st_mtim.tv_sec) }
        guard lstat(mirror, &info) == 0 else { return nil }
        return Int64(info.st_mtim.tv_sec)
    }
}
