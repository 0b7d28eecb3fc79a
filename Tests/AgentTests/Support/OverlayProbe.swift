import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Whether this process may mount overlays (root with `CAP_SYS_ADMIN`, a kernel with
/// overlayfs): tried once on a scratch directory and undone.
enum OverlayProbe {
    static let works: Bool = {
        let root = NSTemporaryDirectory() + "gantry-overlay-probe-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["lower", "upper", "work", "merged"] {
            guard (try? FileManager.default.createDirectory(atPath: "\(root)/\(name)", withIntermediateDirectories: true)) != nil
            else { return false }
        }
        let options = "lowerdir=\(root)/lower,upperdir=\(root)/upper,workdir=\(root)/work"
        guard mount("overlay", "\(root)/merged", "overlay", 0, options) == 0 else { return false }
        umount2("\(root)/merged", Int32(MNT_DETACH))
        return true
    }()
}
