import BenchKit
import Foundation

/// A network namespace of the harness's own, joined to the host by a veth pair whose
/// namespace side sends at a fixed rate (`tc` token bucket): a stand-in for the link
/// between a build host and its git server, so a fresh `git clone` can be timed over a
/// link with a bandwidth and not only over loopback, where the network costs nothing.
///
/// Only the namespace and the pair it creates are touched, both named after the harness's
/// pid; deleting the namespace removes the pair. Needs root, `ip` and `tc`; where any is
/// missing `make` returns nil with the reason and the report says the row was skipped.
/// There is no added latency: `netem` is not in every kernel (not in this one), and a
/// token bucket alone needs nothing beyond `sch_tbf`.
final class ShapedLink {
    let namespace: String
    /// The namespace side's address: servers inside listen here.
    let serverAddress = "10.213.13.2"
    private let hostSide: String
    private let namespaceSide: String
    private let workDir: String
    static let ip = "/usr/sbin/ip"
    static let tc = "/usr/sbin/tc"

    private init(namespace: String, hostSide: String, namespaceSide: String, workDir: String) {
        self.namespace = namespace
        self.hostSide = hostSide
        self.namespaceSide = namespaceSide
        self.workDir = workDir
    }

    /// Creates the namespace and the link, or says why it cannot.
    static func make(workDir: String) -> Result<ShapedLink, HarnessError> {
        guard getuid() == 0 else { return .failure(HarnessError("needs root to create a network namespace")) }
        for tool in [ip, tc] where !FileManager.default.isExecutableFile(atPath: tool) {
            return .failure(HarnessError("\(tool) is not installed"))
        }
        let id = getpid()
        let link = ShapedLink(
            namespace: "gantry-bench-\(id)", hostSide: "gbh\(id % 1_000_000)", namespaceSide: "gbn\(id % 1_000_000)",
            workDir: workDir)
        let steps: [[String]] = [
            ["netns", "add", link.namespace],
            ["link", "add", link.hostSide, "type", "veth", "peer", "name", link.namespaceSide],
            ["link", "set", link.namespaceSide, "netns", link.namespace],
            ["addr", "add", "10.213.13.1/30", "dev", link.hostSide],
            ["link", "set", link.hostSide, "up"],
            ["-n", link.namespace, "addr", "add", "\(link.serverAddress)/30", "dev", link.namespaceSide],
            ["-n", link.namespace, "link", "set", link.namespaceSide, "up"],
            ["-n", link.namespace, "link", "set", "lo", "up"],
        ]
        for arguments in steps {
            do {
                let result = try runCommand(ip, arguments, workDir: workDir, timeout: .seconds(30))
                guard result.status == 0 else {
                    link.tearDown()
                    return .failure(HarnessError("ip \(arguments.joined(separator: " ")): \(result.output)"))
                }
            } catch {
                link.tearDown()
                return .failure(HarnessError("ip \(arguments.joined(separator: " ")): \(error)"))
            }
        }
        return .success(link)
    }

    /// Limits what the namespace sends (a clone's data flows from the server inside to the
    /// client outside) to `megabitsPerSecond`. The bucket holds 10 ms of the rate (at least
    /// 64 KiB), so the rate holds on average without starving TCP.
    func limit(megabitsPerSecond: Int) throws {
        let burst = max(64 * 1024, megabitsPerSecond * 1_000_000 / 8 / 100)
        let result = try runCommand(
            Self.tc,
            [
                "-n", namespace, "qdisc", "replace", "dev", namespaceSide, "root", "tbf", "rate", "\(megabitsPerSecond)mbit",
                "burst", "\(burst)", "latency", "50ms",
            ], workDir: workDir, timeout: .seconds(30))
        guard result.status == 0 else { throw HarnessError("tc: \(result.output)") }
    }

    /// Arguments that run `executable` inside the namespace (`ip netns exec` execs it, so
    /// the spawned pid is the program's own and is stopped by that pid).
    func inside(_ executable: String, _ arguments: [String]) -> (String, [String]) {
        (Self.ip, ["netns", "exec", namespace, executable] + arguments)
    }

    func tearDown() {
        _ = try? runCommand(Self.ip, ["netns", "del", namespace], workDir: workDir, timeout: .seconds(30))
        // Gone with the namespace once the peer was moved; if setup stopped before that.
        _ = try? runCommand(Self.ip, ["link", "del", hostSide], workDir: workDir, timeout: .seconds(30))
    }
}
