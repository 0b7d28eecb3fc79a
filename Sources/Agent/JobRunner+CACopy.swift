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

extension JobRunner {
    /// Largest CA file copied for a step: a PEM chain is a few KiB.
    static let maximumCABytes = 256 * 1024

    /// Copies the pinned CA next to the attempt's work dir (`caCopyPath`), 0644 (a
    /// certificate is public; a step user must read it), when the API serves the
    /// coordinator's own certificate over https. Nil (no `GANTRY_CA_FILE`) otherwise, or
    /// if the copy fails: the step can still pass `--ca-file` itself.
    func copyCA(for spec: Spec) -> String? {
        guard spec.apiUsesCoordinatorCA, spec.apiURL.hasPrefix("https://"), let caCertificate,
            let bytes = FileManager.default.contents(atPath: caCertificate), !bytes.isEmpty,
            bytes.count <= Self.maximumCABytes
        else { return nil }
        let path = caCopyPath(for: spec)
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard fchmod(fd, 0o644) == 0 else {
            unlink(path)
            return nil
        }
        let written = bytes.withUnsafeBytes { raw -> Bool in
            guard let base = raw.baseAddress else { return false }
            var offset = 0
            while offset < raw.count {
                let count = write(fd, base + offset, raw.count - offset)
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { return false }
                offset += count
            }
            return true
        }
        guard written else {
            unlink(path)
            return nil
        }
        return path
    }
}
