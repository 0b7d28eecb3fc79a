/// A test fake or a component under test that never answers makes the test fail with this,
/// instead of hanging until the suite's time limit.
struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var limit: Duration
    var description: String { "\(what) did not finish within \(limit)" }
}

/// Waits for `operation` at most `limit`. On time-out the operation is cancelled and not
/// waited for: the test fails at once with `TimedOut` even if the operation ignores the
/// cancellation.
func withDeadline<T: Sendable>(
    _ limit: Duration, _ what: String, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let (outcomes, outcome) = AsyncStream.makeStream(of: Result<T, any Error>?.self)
    let work = Task {
        do { outcome.yield(.success(try await operation())) } catch { outcome.yield(.failure(error)) }
    }
    let timer = Task {
        try? await Task.sleep(for: limit)
        outcome.yield(nil)
    }
    defer {
        work.cancel()
        timer.cancel()
    }
    for await result in outcomes {
        guard let result else { throw TimedOut(what: what, limit: limit) }
        return try result.get()
    }
    throw CancellationError()
}
