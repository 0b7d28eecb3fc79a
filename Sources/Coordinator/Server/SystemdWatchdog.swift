import ServiceLifecycle

/// Pings systemd's watchdog at half its interval, but only while the coordinator's core
/// answers: a wedged actor stops the pings and systemd restarts the service (safe, since
/// everything acknowledged is committed). Says `STOPPING=1` on graceful shutdown.
public struct SystemdWatchdog: Service {
    let notifier: SystemdNotifier
    let core: CoordinatorCore

    public init(notifier: SystemdNotifier, core: CoordinatorCore) {
        self.notifier = notifier
        self.core = core
    }

    public func run() async throws {
        guard notifier.isEnabled else {
            // Nothing to do, but returning early would end the whole service group.
            try? await gracefulShutdown()
            return
        }
        if let interval = notifier.watchdogInterval.map({ $0 / 2 }) {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                if await core.isResponsive() { notifier.notify("WATCHDOG=1") }
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            }
        } else {
            try? await gracefulShutdown()
        }
        notifier.notify("STOPPING=1")
    }
}
