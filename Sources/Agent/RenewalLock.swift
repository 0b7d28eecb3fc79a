#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive `flock` on the state directory's `renew.lock`, taken without waiting.
///
/// Every slot of a host (and its scaler) shares one key and certificate; when they all
/// find the certificate due at once, one takes the lock and renews, the others see it
/// taken and carry on with the certificate they have (the renewed one is read at their
/// next connection). The kernel drops the lock if the process dies, so a crash mid-renewal
/// never leaves the host unable to renew.
final class RenewalLock {
    private var descriptor: Int32

    /// Nil if another process holds the lock (or the file cannot be opened).
    init?(path: String) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            return nil
        }
        descriptor = fd
    }

    func release() {
        guard descriptor >= 0 else { return }
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
