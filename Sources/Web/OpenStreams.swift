import Synchronization

/// Counts the dashboard's open log streams: each holds a connection and a watcher on the
/// core, so there are at most `maximum` at once; another is answered 503 with
/// `Retry-After` instead of taking resources the API needs.
final class OpenStreams: Sendable {
    static let maximum = 512
    private let count = Mutex(0)

    func open() -> Bool {
        count.withLock { count in
            guard count < Self.maximum else { return false }
            count += 1
            return true
        }
    }

    func close() {
        count.withLock { $0 -= 1 }
    }
}
