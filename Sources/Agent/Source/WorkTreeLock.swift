#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `flock(2)` on one work tree's lock file (`WorkTrees`), taken without waiting.
///
/// Shared while an attempt has the tree mounted as its overlay's lower layer: any number
/// of slots can check out the same commit from one tree at once (a pipeline's parallel
/// steps). Exclusive while a slot brings the tree to another commit, which must not happen
/// under a mounted overlay (overlayfs leaves changes to a lower layer undefined). Never
/// waited for: a slot that finds every tree taken copies the history instead. The kernel
/// releases it when its holder dies.
final class WorkTreeLock: Sendable {
    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// The lock on `path` (created 0600), or nil if another slot holds it in a way that
    /// conflicts or the file cannot be opened.
    static func tryAcquire(_ path: String, shared: Bool) -> WorkTreeLock? {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { return nil }
        guard flock(descriptor, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0 else {
            close(descriptor)
            return nil
        }
        return WorkTreeLock(descriptor: descriptor)
    }

    /// Turns an exclusive lock into a shared one. Linux does this by releasing and taking
    /// again, so another slot may slip in between: the caller checks the tree's marker
    /// afterwards. False if the shared lock could not be had.
    func share() -> Bool {
        flock(descriptor, LOCK_SH | LOCK_NB) == 0
    }

    deinit {
        close(descriptor)
    }
}
