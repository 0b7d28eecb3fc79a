import Foundation

/// What one attempt at a delivery decides: delivered, tried again later, or given up.
/// A pure value type, so every outcome is a unit test without sockets or sleeps.
///
/// Any 2xx is delivered. Everything else (another status, a timeout, a refused
/// connection, a target refused as private) is retried with `NotificationBackoff` until
/// the attempts are used up. A 410 Gone is not special-cased: an admin deletes the
/// endpoint (`gantry notification delete`), the coordinator does not guess.
public enum NotificationAttempt {
    /// How the attempt went.
    public enum Result: Sendable, Equatable {
        case response(status: Int)
        case failure(String)
    }

    /// The delivery's state after it.
    public enum Next: Sendable, Equatable {
        case delivered
        case retry(at: Date)
        case failed(reason: String)
    }

    /// `attempts` counts this attempt (1 after the first).
    public static func next(
        after result: Result, attempts: Int, now: Date, backoff: NotificationBackoff, jitter: Double
    ) -> Next {
        if case .response(let status) = result, (200..<300).contains(status) { return .delivered }
        guard attempts < backoff.maximumAttempts else {
            return .failed(reason: "gave up after \(attempts) attempts: \(describe(result))")
        }
        return .retry(at: now.addingTimeInterval(backoff.delay(afterAttempt: attempts, jitter: jitter)))
    }

    static func describe(_ result: Result) -> String {
        switch result {
        case .response(let status): return "HTTP \(status)"
        case .failure(let error): return error
        }
    }
}
