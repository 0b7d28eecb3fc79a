import BenchKit
import Foundation

/// The machine a report was measured on, read from the system at run time.
struct Machine: Sendable {
    var date: String
    var cpuModel: String
    var cores: Int
    var memoryBytes: Int
    var kernel: String
    var swiftVersion: String

    static func current(swiftVersion: String) -> Machine {
        let cpuinfo = ProcessStats.readProcFile("/proc/cpuinfo") ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let meminfo = ProcessStats.readProcFile("/proc/meminfo") ?? ""
        let kilobytes =
            meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first }
            .flatMap { Int($0) } ?? 0
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return Machine(
            date: formatter.string(from: Date()), cpuModel: model, cores: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))),
            memoryBytes: kilobytes * 1024, kernel: release, swiftVersion: swiftVersion)
    }

    var summary: String {
        "\(cores) cores (\(cpuModel)), \(String(format: "%.1f", Double(memoryBytes) / 1_073_741_824)) GiB, Linux \(kernel)"
    }

    /// The 1-, 5- and 15-minute load averages, as /proc/loadavg prints them.
    static func loadAverage() -> String {
        (ProcessStats.readProcFile("/proc/loadavg") ?? "").split(separator: " ").prefix(3).joined(separator: " ")
    }
}
