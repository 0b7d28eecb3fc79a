import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An overlay mount (overlayfs) of a work tree (`WorkTrees`) onto an attempt's work dir:
/// the step sees the tree's files and writes its changes to its own upper directory, so
/// the tree stays exactly the commit for the next attempt and a checkout costs a mount,
/// not a copy of every file.
///
/// Needs `CAP_SYS_ADMIN` (an agent run as root has it). Where it is refused (an agent
/// without it, a container, a kernel without overlayfs), the first failure turns overlays
/// off for the process and checkouts copy the history as before.
enum OverlayMount {
    private static let refused = Mutex<String?>(nil)

    /// Why overlays are off in this process, if they are.
    static var refusal: String? { refused.withLock { $0 } }

    /// Mounts `lower` at `target` with `upper` and `work` (empty directories on one file
    /// system) as its writable layer. `nosuid` and `nodev`: nothing in a checkout needs them.
    static func mount(lower: String, upper: String, work: String, at target: String) -> String? {
        if let refusal { return refusal }
        for path in [lower, upper, work] where path.contains(where: { ",:\\=\n".contains($0) }) {
            return "the path \(path) cannot be an overlay option"
        }
        let options = "lowerdir=\(lower),upperdir=\(upper),workdir=\(work)"
        guard Glibc.mount("overlay", target, "overlay", UInt(MS_NOSUID | MS_NODEV), options) == 0 else {
            let error = errno
            let why = "overlay mount refused: \(String(cString: strerror(error)))"
            // Missing privilege or support holds for every later mount too.
            if [EPERM, EACCES, ENODEV, ENOSYS].contains(error) { refused.withLock { $0 = why } }
            return why
        }
        return nil
    }

    /// Detaches the mount at `target` (lazily: a process of the step still inside it does
    /// not keep the agent from going on). False if nothing was mounted there.
    @discardableResult
    static func detach(_ target: String) -> Bool {
        umount2(target, Int32(MNT_DETACH)) == 0
    }

    /// Detaches every mount at or below `path` (left by a killed agent), deepest first.
    static func detachAll(atOrUnder path: String, in table: MountTable = .current()) {
        for mountPoint in table.mountPoints(atOrUnder: path) { detach(mountPoint) }
    }
}
