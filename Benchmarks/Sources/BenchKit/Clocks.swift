#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock nanoseconds (CLOCK_REALTIME). The only clock a step's shell can read too
/// (`date +%s%N`), so it is what dispatch latency is measured with; same host, same clock.
public func realtimeNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// Wall-clock milliseconds, as heartbeats carry them.
public func realtimeMilliseconds() -> Int64 {
    realtimeNanoseconds() / 1_000_000
}

extension Duration {
    /// Seconds as a Double, for rates and reports.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    public var milliseconds: Double { seconds * 1000 }
}
