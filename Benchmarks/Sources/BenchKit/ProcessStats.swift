#if canImport(Glibc)
import Glibc
#endif

/// What /proc says about one process: its CPU time and resident memory.
///
/// CPU is `utime + stime` from /proc/PID/stat (the process's own threads, not its waited-for
/// children), in clock ticks (10 ms on Linux), so per-job figures are taken over whole runs
/// of hundreds of jobs, never one job.
public enum ProcessStats {
    /// Reads a /proc file whole (their size is reported as 0, so read to EOF).
    public static func readProcFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// User + system CPU seconds the process has used so far.
    public static func cpuSeconds(pid: pid_t) -> Double? {
        guard let stat = readProcFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name start at field 3 (state); utime is field 14, stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// User + system CPU seconds of the process's children that it has waited for (for an
    /// agent: the steps it ran).
    public static func childrenCPUSeconds(pid: pid_t) -> Double? {
        guard let stat = readProcFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 14, let user = Double(fields[13]), let system = Double(fields[14]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// VmRSS in bytes.
    public static func residentBytes(pid: pid_t) -> Int? {
        statusField("VmRSS", pid: pid)
    }

    /// VmHWM (peak RSS) in bytes.
    public static func peakResidentBytes(pid: pid_t) -> Int? {
        statusField("VmHWM", pid: pid)
    }

    /// Where a process's resident memory is, from /proc/PID/smaps_rollup, in bytes.
    public struct Memory: Sendable {
        public var resident: Int
        /// Private and shared anonymous pages: heap, stacks, what the process itself made.
        public var anonymous: Int
        /// Pages of mapped files (mostly the executable): clean, shared by every process
        /// that maps the same binary, and reclaimable by the kernel.
        public var fileBacked: Int { resident - anonymous }
        /// Proportional set size: shared pages divided among the processes that map them.
        public var proportional: Int
    }

    public static func memory(pid: pid_t) -> Memory? {
        guard let rollup = readProcFile("/proc/\(pid)/smaps_rollup") else { return nil }
        var fields: [Substring: Int] = [:]
        for line in rollup.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, parts[0].hasSuffix(":"), let kilobytes = Int(parts[1]) {
                fields[parts[0].dropLast()] = kilobytes * 1024
            }
        }
        guard let resident = fields["Rss"], let anonymous = fields["Anonymous"], let proportional = fields["Pss"] else {
            return nil
        }
        return Memory(resident: resident, anonymous: anonymous, proportional: proportional)
    }

    /// Open file descriptors of the process.
    public static func openFileCount(pid: pid_t) -> Int? {
        guard let directory = opendir("/proc/\(pid)/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while readdir(directory) != nil { count += 1 }
        return count - 2  // "." and ".."
    }

    static func statusField(_ name: String, pid: pid_t) -> Int? {
        guard let status = readProcFile("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kilobytes = Int(parts[1]) { return kilobytes * 1024 }
        }
        return nil
    }
}

/// Raises the soft open-file limit to the hard limit and returns the new soft limit:
/// thousands of agent connections need that many descriptors, in the load generator and
/// (inherited by the processes it starts) in the coordinator.
@discardableResult
public func raiseOpenFileLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(.init(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return -1 }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(.init(RLIMIT_NOFILE.rawValue), &limit)
        _ = getrlimit(.init(RLIMIT_NOFILE.rawValue), &limit)
    }
    return Int(limit.rlim_cur)
}
