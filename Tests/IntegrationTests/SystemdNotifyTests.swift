import Foundation
import Testing

/// The coordinator under a pretend systemd: a Unix datagram socket in $NOTIFY_SOCKET that
/// collects what `Type=notify` and `WatchdogSec=` would see.
@Suite("systemd notify", .timeLimit(.minutes(2)))
struct SystemdNotifyTests {
    /// A bound datagram socket; `messages()` drains what has arrived.
    final class NotifySocket: @unchecked Sendable {
        let path: String
        let fd: Int32

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { buffer in
                for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard fd >= 0, bound == 0 else { throw TimedOut(description: "cannot bind \(path)") }
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        }

        func messages() -> [String] {
            var result: [String] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return result }
                result.append(String(decoding: buffer[..<n], as: UTF8.self))
            }
        }

        deinit {
            close(fd)
            unlink(path)
        }
    }

    @Test func readyAfterListeningThenWatchdogPingsThenStopping() async throws {
        try await TestCluster.with("notify") { cluster in
            await cluster.coordinator.stop()  // restart it under the pretend systemd
            let notify = try NotifySocket(path: cluster.root + "/notify.sock")
            try await cluster.startCoordinator(
                environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"])
            var seen: [String] = []
            try await waitUntil("READY=1 and two watchdog pings", timeout: .seconds(30)) {
                seen += notify.messages()
                return seen.contains { $0.hasPrefix("READY=1") } && seen.filter { $0 == "WATCHDOG=1" }.count >= 2
            }
            let ready = try #require(seen.first { $0.hasPrefix("READY=1") })
            #expect(ready.contains("STATUS=agents on \(cluster.agentAddress), API on \(cluster.httpAddress)"))
            await cluster.coordinator.stop()
            #expect(try await cluster.coordinator.waitForExit() == .exited(0))
            seen += notify.messages()
            #expect(seen.last == "STOPPING=1")
        }
    }
}
