#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A cgroup (v2) per job attempt, where the agent may create them: the one boundary no
/// descendant can leave, whatever it does to its session or environment.
///
/// The agent creates `<its own cgroup>/job-<id>-<attempt>` and each command's shell moves
/// itself into it (`echo $$ > cgroup.procs`) before `exec`ing the step, so everything the
/// step forks is born inside. Stopping writes `cgroup.kill` (Linux 5.14+; older kernels:
/// every pid in `cgroup.procs` gets SIGKILL). This needs write access to the agent's own
/// cgroup: under systemd, `Delegate=yes` in the unit (gantry-agent@.service sets it); as
/// root elsewhere, the cgroup2 mount must be writable. Where it is not, `create` returns
/// nil and the process-group and environment nets (`ProcessGroupControl`) remain.
public struct JobCgroup: Sendable {
    public let path: String

    /// The cgroup2 directory the agent runs in, if it can create children there.
    public static let base: String? = {
        guard let mount = cgroup2Mount(), let own = ownCgroupPath() else { return nil }
        let base = mount + (own == "/" ? "" : own)
        let probe = base + "/gantry-probe-\(getpid())"
        guard mkdir(probe, 0o755) == 0 else { return nil }
        rmdir(probe)
        return base
    }()

    public static var isAvailable: Bool { base != nil }

    /// Creates the attempt's cgroup, or nil where cgroups cannot be used.
    public static func create(jobID: String, attempt: UInt32) -> JobCgroup? {
        guard let base else { return nil }
        let name = "job-\(jobID.filter { $0.isLetter || $0.isNumber || $0 == "-" })-\(attempt)"
        let path = base + "/" + name
        // 0755, unlike the agent's storage dirs: it holds no data, only the kernel's control
        // files, and runtimes in the step (JVM, Go, .NET) read their own cgroup's
        // memory.max and cpu.max to size themselves. Only the agent can write to it.
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { return nil }
        return JobCgroup(path: path)
    }

    /// `/bin/sh` arguments that move the shell into this cgroup, then run `command` in the
    /// same shell (same pid, so the process group and session stay the command's).
    ///
    /// `eval` rather than `exec /bin/sh -c`: a second shell start cost as much as the first,
    /// on every command of every job. `set --` inside the evaluated text clears the
    /// positional parameters, so the command sees `$0` = `/bin/sh` and no `$1` as with a
    /// plain `sh -c`; only a syntax error reads differently ("eval: 1: ..."), with the same
    /// exit status 2.
    public func shellArguments(for command: String) -> [String] {
        ["-c", #"echo $$ 2>/dev/null > "$1"; eval "set --; $2""#, "/bin/sh", path + "/cgroup.procs", command]
    }

    /// `/bin/sh` arguments for a step that runs as another user: that user cannot move
    /// itself into the cgroup (moving needs write access to the agent's own cgroup), so the
    /// shell waits on standard input until the agent has moved it (`add(processID:)`) and
    /// says so with a newline, then reads from /dev/null like any step. If the agent
    /// closes standard input instead, the command does not run (exit status 125).
    public static func waitingShellArguments(for command: String) -> [String] {
        [
            "-c",
            #"IFS= read -r gantry_ready || { echo "gantry: the agent could not move this step into its cgroup" >&2; exit 125; }; unset gantry_ready; exec </dev/null; eval "set --; $1""#,
            "/bin/sh", command,
        ]
    }

    /// Moves a process (the step's shell, before it runs anything) into this cgroup.
    public func add(processID: pid_t) -> Bool {
        let fd = open(path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let text = Array("\(processID)\n".utf8)
        return text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == text.count
    }

    public var processIDs: [pid_t] {
        ((try? String(contentsOfFile: path + "/cgroup.procs", encoding: .utf8)) ?? "")
            .split(separator: "\n").compactMap { pid_t($0) }
    }

    public func signal(_ number: Int32) {
        if number == SIGKILL, FileManager.default.fileExists(atPath: path + "/cgroup.kill"),
            (try? "1".write(toFile: path + "/cgroup.kill", atomically: false, encoding: .utf8)) != nil
        {
            return
        }
        for pid in processIDs { kill(pid, number) }
    }

    /// Kills whatever is left and removes the cgroup (bounded wait for it to empty).
    public func destroy() {
        for _ in 0..<50 {
            if processIDs.isEmpty, rmdir(path) == 0 || errno == ENOENT { return }
            signal(SIGKILL)
            usleep(10_000)
        }
    }

    /// Removes empty `job-*` cgroups left by agents that were killed (their steps have
    /// since exited). Only ones older than a minute, so a cgroup another agent created a
    /// moment ago, not yet joined by its step, is left alone. Returns how many went.
    @discardableResult
    public static func removeStale(olderThan age: TimeInterval = 60) -> Int {
        guard let base else { return 0 }
        var removed = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where name.hasPrefix("job-") {
            let path = base + "/" + name
            guard let created = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                Date().timeIntervalSince(created) > age
            else { continue }
            if rmdir(path) == 0 { removed += 1 }  // fails (EBUSY) while processes remain
        }
        return removed
    }

    static func cgroup2Mount() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            // "... mountpoint options - fstype source superoptions"
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }

    static func ownCgroupPath() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            return String(line.dropFirst(3))
        }
        return nil
    }
}
