#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive `flock` on `<dir>/<name>.lock`, held by the agent process that owns
/// `<name>` for as long as it does: an attempt's work dir and its siblings in the work
/// root (`WORKROOT/<job>-<attempt>.lock`), or a slot's spool dir (`STATE/spool/<slot>.lock`).
///
/// The kernel drops the lock when the process dies, however it dies, so at the next
/// start `LeftoverReclaim` tells what a killed agent left behind (a lock file nobody
/// holds) from what a live sibling slot sharing the work root still uses (a held lock),
/// without any record that could go stale. The file is opened close-on-exec, so a step's
/// processes never inherit (and keep holding) it.
public final class AttemptLock: Sendable {
    public let path: String
    private let descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// Takes the lock at `path` (created 0600) without waiting; nil when another process
    /// holds it or it cannot be created (a full disk): the caller goes on without it, and
    /// what it guards is then kept by every reclaim (no lock file: not known to be free).
    public static func take(_ path: String) -> AttemptLock? {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { return nil }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            return nil
        }
        return AttemptLock(path: path, descriptor: descriptor)
    }

    /// Removes the lock file while still holding it, then lets go: whoever opens the path
    /// afterwards finds nothing, or a new file of its own.
    public func release() {
        unlink(path)
        close(descriptor)
    }
}
