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

/// Creates the agent's directories with exact modes, whatever the umask.
///
/// Everything the agent keeps (state, spool, work root, attempt dirs) is 0700 and owned by
/// the agent's user, except where a step user needs to reach its own work dir: then the
/// work root is 0711 (a step can enter its attempt dir by path, cannot list the root, and
/// cannot enter another attempt's 0700 dir), and the attempt dir is 0700 owned by the step
/// user once the agent has checked the source out into it (`WorkDirectoryHandover`).
public enum AgentDirectories {
    public static let privateMode: mode_t = 0o700
    /// The work root when steps run as other users: traversable, not listable.
    public static let sharedWorkRootMode: mode_t = 0o711

    /// Creates `path` and any missing parents with `mode` (parents get it too) and sets the
    /// mode of `path` exactly. An existing `path` owned by this user is tightened to `mode`;
    /// one owned by another user or with the sticky bit (a shared dir like /tmp) is left
    /// alone and reported in the returned warning.
    @discardableResult
    public static func ensure(_ path: String, mode: mode_t = privateMode) throws -> String? {
        precondition(!path.isEmpty)
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw IsolationError.directory("\(path) exists and is not a directory")
            }
            let current = info.st_mode & 0o7777
            if current == mode { return nil }
            if info.st_uid != geteuid() || current & S_ISVTX != 0 {
                return "\(path) has mode \(String(current, radix: 8)) and is not this agent's to change (wanted \(String(mode, radix: 8)))"
            }
            guard chmod(path, mode) == 0 else {
                throw IsolationError.directory("cannot chmod \(path) to \(String(mode, radix: 8)): \(String(cString: strerror(errno)))")
            }
            return nil
        }
        let parent = parentDirectory(of: path)
        if !parent.isEmpty, parent != path, parent != "/", parent != ".", !FileManager.default.fileExists(atPath: parent) {
            try ensure(parent, mode: mode)
        }
        guard mkdir(path, mode) == 0 || errno == EEXIST else {
            throw IsolationError.directory("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        guard chmod(path, mode) == 0 else {
            throw IsolationError.directory("cannot chmod \(path) to \(String(mode, radix: 8)): \(String(cString: strerror(errno)))")
        }
        return nil
    }

    /// `ensure(path, mode: privateMode)`, then refuses `path` unless it is a directory (not
    /// a link to one) owned by this user and writable by no one else. For a directory whose
    /// content the agent trusts and shares between jobs (the git mirrors): there `ensure`
    /// leaves another user's directory, or a shared sticky one, alone, and using it anyway
    /// would let that user plant or rewrite what every pipeline checks out.
    public static func ensureOwned(_ path: String) throws {
        let warning = try ensure(path, mode: privateMode)
        var info = stat()
        guard lstat(path, &info) == 0 else {
            throw IsolationError.directory("cannot inspect \(path): \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { throw IsolationError.directory("\(path) is not a directory") }
        let mode = info.st_mode & 0o7777
        guard info.st_uid == geteuid(), mode & 0o022 == 0 else {
            throw IsolationError.directory(
                "\(path) must belong to this agent's user (uid \(geteuid())) and be writable by no one else: "
                    + "it is owned by uid \(info.st_uid) with mode \(String(mode, radix: 8))"
                    + (warning.map { " (\($0))" } ?? "") + "; fix or remove it")
        }
    }

    /// A fresh attempt work dir: removed if left over, created 0700, and given to `owner`
    /// when there is one (the agent keeps the right to remove it afterwards). `JobRunner`
    /// passes none and hands the dir over after the checkout (`WorkDirectoryHandover`).
    public static func createWorkDirectory(_ path: String, owner: StepUser?) throws {
        try? FileManager.default.removeItem(atPath: path)
        guard mkdir(path, privateMode) == 0 else {
            throw IsolationError.directory("cannot create work dir \(path): \(String(cString: strerror(errno)))")
        }
        // chmod before chown: once the step user owns it, changing its mode would need
        // CAP_FOWNER, which the agent does not otherwise need.
        guard chmod(path, privateMode) == 0 else {
            throw IsolationError.directory("cannot chmod work dir \(path): \(String(cString: strerror(errno)))")
        }
        if let owner, chown(path, owner.uid, owner.gid) != 0 {
            let why = String(cString: strerror(errno))
            rmdir(path)
            throw IsolationError.directory("cannot give work dir \(path) to \(owner): \(why)")
        }
    }

    /// `path` without its last component ("" for a bare name, "/" for a child of the root).
    static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }

    /// The mode bits of `path`, or nil if it does not exist.
    public static func mode(of path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }
}
