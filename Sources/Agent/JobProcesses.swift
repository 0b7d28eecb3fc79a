import CGantryShims
import Synchronization

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

/// Finds every process a job started, wherever it went, and reaps orphans.
///
/// Process groups alone miss a process that `setsid`s into a new session. So the agent
/// is a child subreaper (orphans are re-parented to it, not to init), and each job's
/// processes are recognised by the `GANTRY_JOB_ID` / `GANTRY_ATTEMPT` pair in their
/// environment, which descendants inherit even across `setsid` (a process that scrubs its
/// own environment escapes; where systemd runs the agent, the unit's cgroup is the last
/// line, see docs/operations.md). Reading `/proc/*/environ` works for processes of the
/// agent's own user, and for a step user's only where the agent is root (or has
/// CAP_SYS_PTRACE, which the shipped unit does not grant): there the per-job cgroup is the
/// net that holds.
public enum JobProcesses {
    /// Becomes a child subreaper; returns false where the kernel does not support it.
    @discardableResult
    public static func becomeSubreaper() -> Bool {
        gantry_set_child_subreaper() == 0
    }

    /// Pids of live processes whose environment marks them as this attempt's.
    public static func find(jobID: String, attempt: UInt32) -> [pid_t] {
        let markers = [Array("GANTRY_JOB_ID=\(jobID)".utf8), Array("GANTRY_ATTEMPT=\(attempt)".utf8)]
        let me = getpid()
        return processIDs().filter { pid in
            guard pid != me, let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else {
                return false
            }
            let entries = environment.split(separator: 0, omittingEmptySubsequences: true)
            return markers.allSatisfy { marker in entries.contains { $0.elementsEqual(marker) } }
        }
    }

    /// Sends `signal` to every live process of the attempt; returns how many were signalled.
    @discardableResult
    public static func signal(_ signal: Int32, jobID: String, attempt: UInt32) -> Int {
        let pids = find(jobID: jobID, attempt: attempt)
        for pid in pids { kill(pid, signal) }
        return pids.count
    }

    static func processIDs() -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
    }
}

/// Reaps zombie orphans re-parented to the agent (it is a subreaper).
///
/// swift-subprocess waits for the processes it spawned by pidfd, so a blanket
/// `waitpid(-1)` would steal their exit statuses. This reaps only zombie children that are
/// not registered command leaders, are older than a second (a leader is registered
/// microseconds after it is spawned, so an unregistered one that old is an orphan), and
/// are not in the agent's own session (a job's processes never are; a process that also
/// runs other children, such as the test runner, keeps their statuses).
///
/// The registry of leaders is the process's, not the reaper's: every command any
/// `ProcessGroupControl` starts is registered, whichever runtime (or none) owns it. One
/// agent runs per process in production, but the test runner runs many runtimes and bare
/// job runners at once, and a reaper that knew only its own runtime's leaders took
/// another's exited step before swift-subprocess could wait for it (the step then ended
/// with exit status -1).
public final class OrphanReaper: Sendable {
    private static let leaders = Mutex<Set<pid_t>>([])
    /// Commands spawned and not registered yet (`SpawnGuard`): while there is one, no
    /// reaper of the process takes anything.
    private static let spawning = Mutex<Int>(0)

    /// Held from just before a command is spawned until it is registered as a leader
    /// (`end()`, or when it goes away if the spawn failed). A command can exit before its
    /// registration runs, and on two loaded cores that registration has come more than a
    /// second after the spawn: a reaper then took the unregistered zombie, and
    /// swift-subprocess's wait failed with ECHILD (a cache restore ended "No child
    /// processes"). The pass waits for the next one instead; an orphan loses nothing by it.
    public final class SpawnGuard: Sendable {
        private let ended = Mutex(false)

        public init() {
            OrphanReaper.spawning.withLock { $0 += 1 }
        }

        public func end() {
            let first = ended.withLock { ended -> Bool in
                defer { ended = true }
                return !ended
            }
            if first { OrphanReaper.spawning.withLock { $0 -= 1 } }
        }

        deinit {
            end()
        }
    }

    public init() {}

    public static func registerLeader(_ pid: pid_t) {
        leaders.withLock { _ = $0.insert(pid) }
    }

    public static func unregisterLeader(_ pid: pid_t) {
        leaders.withLock { _ = $0.remove(pid) }
    }

    /// Whether `pid` is a registered command leader, which no reaper takes.
    static func isLeader(_ pid: pid_t) -> Bool {
        leaders.withLock { $0.contains(pid) }
    }

    /// One pass over the agent's own children; returns the pids reaped.
    ///
    /// Runs after every job, and a scan of every `/proc/PID/stat` on the host cost a third
    /// of an agent's CPU on trivial jobs. So it first asks the kernel whether the agent has
    /// any exited child at all (usually not: the step's shell was already reaped), and when
    /// it does, reads only `/proc/self/task/*/children` where the kernel provides it
    /// (CONFIG_PROC_CHILDREN), falling back to the full scan where it does not.
    @discardableResult
    public func reap() -> [pid_t] {
        guard Self.spawning.withLock({ $0 }) == 0, Self.hasExitedChild() else { return [] }
        let me = getpid()
        let mySession = getsid(0)
        let known = Self.leaders.withLock { $0 }
        let uptime = Self.uptimeSeconds()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var reaped: [pid_t] = []
        for pid in Self.candidateChildren() where !known.contains(pid) {
            guard let stat = Self.stat(pid),
                Self.isOrphan(stat, of: me, session: mySession, uptime: uptime, ticksPerSecond: ticks)
            else { continue }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { reaped.append(pid) }
        }
        return reaped
    }

    /// Whether `stat` (a process that is not a registered leader) is an orphan a job left
    /// behind: a zombie child of `me`, older than a second, outside `session`. Every step,
    /// git and tar starts its own session, so what a job leaves behind is never in the
    /// agent's: a child in it is one the process spawned some other way (swift-subprocess
    /// waits for it, and would get ECHILD if the reaper took it).
    static func isOrphan(_ stat: Stat, of me: pid_t, session: pid_t, uptime: Double?, ticksPerSecond: Double) -> Bool {
        guard stat.parent == me, stat.state == "Z", stat.session != session else { return false }
        if let uptime, uptime - Double(stat.startTicks) / ticksPerSecond < 1 { return false }
        return true
    }

    /// Whether any child of this process has exited and not been reaped yet. Peeks without
    /// reaping (WNOWAIT), so it never takes an exit status swift-subprocess waits for.
    static func hasExitedChild() -> Bool {
        gantry_peek_exited_child() != 0
    }

    /// This process's children from `/proc/self/task/*/children` (each thread lists the
    /// children it forked or that were re-parented to it), or every pid on the host where
    /// the kernel does not provide that file. Callers still check the parent in `stat`.
    static func candidateChildren() -> [pid_t] {
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else {
            return JobProcesses.processIDs()
        }
        var children: [pid_t] = []
        for thread in threads {
            guard let list = FileManager.default.contents(atPath: "/proc/self/task/\(thread)/children") else {
                // A thread that exited between listing and reading has no children left to
                // report; a missing file on a live thread means no CONFIG_PROC_CHILDREN.
                if FileManager.default.fileExists(atPath: "/proc/self/task/\(thread)") { return JobProcesses.processIDs() }
                continue
            }
            children += list.split(separator: UInt8(ascii: " ")).compactMap { pid_t(String(decoding: $0, as: UTF8.self)) }
        }
        return children
    }

    struct Stat {
        var state: Character
        var parent: pid_t
        var session: pid_t
        var startTicks: UInt64
    }

    /// Fields of /proc/PID/stat after the parenthesised command name (which may contain spaces).
    static func stat(_ pid: pid_t) -> Stat? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] = state (3rd field), fields[1] = ppid (4th), fields[3] = session (6th),
        // fields[19] = starttime (22nd).
        guard fields.count > 19, let state = fields[0].first, let parent = pid_t(fields[1]),
            let session = pid_t(fields[3]), let start = UInt64(fields[19])
        else { return nil }
        return Stat(state: state, parent: parent, session: session, startTicks: start)
    }

    static func uptimeSeconds() -> Double? {
        (try? String(contentsOfFile: "/proc/uptime", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) }
    }
}
