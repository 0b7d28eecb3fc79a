#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive `flock(2)` on a mirror's lock file, shared by every slot (every agent
/// process) of the host: one slot at a time writes a mirror (creates it, fetches into it).
/// The kernel releases it if the holder dies, so a crashed slot never leaves a mirror
/// locked.
///
/// Reading is not locked: a slot copies its commit out of the mirror after it released
/// the lock, while another slot may be fetching. That is safe because nothing ever removes
/// or rewrites an object in a mirror: automatic gc and maintenance are off (`gc.auto=0`,
/// `maintenance.auto=false`), and a fetch only adds objects (in new packs or loose files,
/// each written to a temporary name and renamed into place) and moves refs (each update
/// atomic). The clone asks for a commit id resolved under the lock, whose objects stay
/// whatever later fetches do to the refs.
///
/// The wait is bounded and polled, so the step's timeout or a cancel ends it too.
final class MirrorLock {
    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    enum Failure: Error {
        case open(String)
        case timedOut
        case stopped
    }

    /// Takes the lock on `path` (created 0600), waiting at most `timeout` and giving up
    /// as soon as `shouldStop` says so.
    static func acquire(
        _ path: String, timeout: Duration, shouldStop: @Sendable () -> Bool
    ) async throws(Failure) -> MirrorLock {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { throw .open(String(cString: strerror(errno))) }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var pause = Duration.milliseconds(20)
        while true {
            if flock(descriptor, LOCK_EX | LOCK_NB) == 0 {
                // The lock file's time is when a checkout last used the mirror (`MirrorPrune`).
                futimens(descriptor, nil)
                return MirrorLock(descriptor: descriptor)
            }
            let error = errno
            guard error == EWOULDBLOCK || error == EINTR else {
                close(descriptor)
                throw .open(String(cString: strerror(error)))
            }
            if shouldStop() {
                close(descriptor)
                throw .stopped
            }
            guard clock.now < deadline else {
                close(descriptor)
                throw .timedOut
            }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(500))
        }
    }

    /// Releases the lock (closing the descriptor does).
    func release() {
        flock(descriptor, LOCK_UN)
    }

    deinit {
        close(descriptor)
    }
}
