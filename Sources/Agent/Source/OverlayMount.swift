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
/// Needs `CAP_SYS_ADMIN` (an agent run as root has it). Without it overlays are off from
/// the start, so no work tree is prepared for a mount that would fail; where the mount is
/// refused all the same (a container, a kernel without overlayfs), the first refusal
/// turns overlays off for the process, and checkouts copy the history as before.
enum OverlayMount {
    private static let refused = Mutex<String?>(mayMount() ? nil : "the agent lacks CAP_SYS_ADMIN")

    /// Why overlays are off in this process, if they are.
    static var refusal: String? { refused.withLock { $0 } }

    /// Features pinned off rather than left to the kernel's defaults: `index` ties a lower
    /// layer to one overlay (the trees are shared), `metacopy` and `redirect_dir` let
    /// the upper layer point into the lower one by xattrs. Kernels older than 4.19 do not
    /// know them; there the mount is tried once more without them.
    static let pinnedOptions = "index=off,metacopy=off,redirect_dir=off"

    /// Mounts `lower` at `target` with `upper` and `work` (empty directories on one file
    /// system) as its writable layer. `nosuid` and `nodev`: nothing in a checkout needs
    /// them. Returns why it was refused, or nil.
    static func mount(lower: String, upper: String, work: String, at target: String) -> String? {
        if let refusal { return refusal }
        for path in [lower, upper, work] where path.contains(where: { ",:\\=\n".contains($0) }) {
            return "the path \(path) cannot be an overlay option"
        }
        let layers = "lowerdir=\(lower),upperdir=\(upper),workdir=\(work)"
        var error: Int32 = 0
        for options in [layers + "," + pinnedOptions, layers] {
            if Glibc.mount("overlay", target, "overlay", UInt(MS_NOSUID | MS_NODEV), options) == 0 { return nil }
            error = errno
            guard error == EINVAL else { break }
        }
        let why = "overlay mount refused: \(String(cString: strerror(error)))"
        // Missing privilege or support holds for every later mount too.
        if [EPERM, EACCES, ENODEV, ENOSYS, EINVAL].contains(error) { refused.withLock { $0 = why } }
        return why
    }

    /// Detaches the mount at `target` (lazily: a process of the step still inside it does
    /// not keep the agent from going on). The last component is never followed
    /// (`UMOUNT_NOFOLLOW`); every mount point the agent makes is the work dir or a
    /// directory right in it, so no component before it is a step's. False if nothing
    /// was mounted there.
    @discardableResult
    static func detach(_ target: String) -> Bool {
        umount2(target, Int32(MNT_DETACH) | Int32(UMOUNT_NOFOLLOW)) == 0
    }

    /// Detaches every mount at or below `path` (left by a killed agent), deepest first.
    static func detachAll(atOrUnder path: String, in table: MountTable = .current()) {
        for mountPoint in table.mountPoints(atOrUnder: path) { detach(mountPoint) }
    }

    /// Whether the effective capabilities hold `CAP_SYS_ADMIN` (bit 21 of `CapEff` in
    /// `/proc/self/status`).
    static func mayMount() -> Bool {
        let descriptor = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return false }
        let text = String(decoding: buffer.prefix(count), as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let mask = UInt64(line.dropFirst("CapEff:".count).trimmingPrefix(while: \.isWhitespace), radix: 16)
        else { return false }
        return mask & (1 << 21) != 0
    }
}
