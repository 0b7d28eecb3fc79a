import ServiceLifecycle

/// Drives `CoordinatorCore.tick()` so that an agent silent past the lease TTL is declared
/// lost within `interval` of the deadline (default 250 ms, well under the 1 s the failure
/// model allows). It only checks deadlines; dispatch never waits for it.
public struct LeaseClock: Service {
    let core: CoordinatorCore
    let interval: Duration

    public init(core: CoordinatorCore, interval: Duration = .milliseconds(250)) {
        self.core = core
        self.interval = interval
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: interval)
            await core.tick()
        }
    }
}
