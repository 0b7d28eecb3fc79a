import Foundation
import Synchronization

/// Sign-in attempts per client address: at most `perMinute` in a minute. A token is 256
/// random bits, so this is not about guessing: it keeps one client from filling the
/// session table and the audit log with sign-ins. The table of addresses is bounded too
/// (emptied when full: at worst a minute's counts are forgotten).
final class SignInLimit: Sendable {
    static let perMinute = 20
    static let maximumAddresses = 10_000

    private let windows = Mutex<[String: (start: Date, count: Int)]>([:])

    func admit(_ address: String, now: Date = Date()) -> Bool {
        windows.withLock { windows in
            if windows.count >= Self.maximumAddresses { windows.removeAll(keepingCapacity: true) }
            guard var window = windows[address], now.timeIntervalSince(window.start) < 60 else {
                windows[address] = (now, 1)
                return true
            }
            guard window.count < Self.perMinute else { return false }
            window.count += 1
            windows[address] = window
            return true
        }
    }
}
