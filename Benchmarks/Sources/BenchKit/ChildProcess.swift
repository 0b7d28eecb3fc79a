import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A process the harness started, stopped by its pid (never by name).
///
/// stdout and stderr go to files (kept with the run's work dir for diagnosis) and the
/// harness waits on lines appearing there, with a deadline, instead of sleeping. Every
/// child is recorded in `ChildRegistry`, which stops them all on exit or on a signal and
/// keeps a pid file so `scripts/benchmark` can stop them even if the driver itself dies.
public final class ChildProcess: Sendable {
    public let name: String
    public let pid: pid_t
    public let stdoutPath: String
    public let stderrPath: String
    private let exitStatus = Mutex<Int32?>(nil)

    init(name: String, pid: pid_t, stdoutPath: String, stderrPath: String) {
        self.name = name
        self.pid = pid
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
    }

    /// Starts `executable` with `arguments`; stdout and stderr to the given files (the same
    /// file for both if they are equal), stdin from /dev/null.
    public static func spawn(
        name: String, executable: String, arguments: [String], stdout: String, stderr: String
    ) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if stderr == stdout {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        }
        let pid = try spawnProcess(executable: executable, arguments: arguments, actions: &actions)
        let child = ChildProcess(name: name, pid: pid, stdoutPath: stdout, stderrPath: stderr)
        ChildRegistry.shared.add(child)
        return child
    }

    /// Starts `executable` with its stderr on a pipe whose read end is returned (stdout to
    /// `stdout`). The caller reads the pipe and must close it.
    public static func spawnWithStderrPipe(
        name: String, executable: String, arguments: [String], stdout: String
    ) throws -> (ChildProcess, Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw HarnessError("pipe() failed: \(String(cString: strerror(errno)))") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[1])
        let pid: pid_t
        do {
            pid = try spawnProcess(executable: executable, arguments: arguments, actions: &actions)
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        close(fds[1])
        let child = ChildProcess(name: name, pid: pid, stdoutPath: stdout, stderrPath: "(pipe)")
        ChildRegistry.shared.add(child)
        return (child, fds[0])
    }

    private static func spawnProcess(
        executable: String, arguments: [String], actions: inout posix_spawn_file_actions_t
    ) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group: a Ctrl-C in the terminal reaches the harness, which then stops
        // its children in order (agents before the coordinator) rather than all at once.
        // Signal dispositions the harness changed (SIGINT/SIGTERM are handled, SIGPIPE
        // ignored) are reset so the Gantry binaries see the defaults they expect.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            throw HarnessError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// The exit status once the process has exited (reaped), nil while it runs.
    public var exited: Int32? {
        exitStatus.withLock { status in
            if status == nil {
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid { status = raw }
            }
            return status
        }
    }

    public var isRunning: Bool { exited == nil }

    public func signal(_ number: Int32) {
        if isRunning { kill(pid, number) }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; always reaps it.
    public func stop(grace: Duration = .seconds(10)) {
        signal(SIGTERM)
        let deadline = ContinuousClock.now + grace
        while isRunning, ContinuousClock.now < deadline { usleep(5_000) }
        if isRunning {
            signal(SIGKILL)
            let hardDeadline = ContinuousClock.now + .seconds(10)
            while isRunning, ContinuousClock.now < hardDeadline { usleep(5_000) }
        }
        ChildRegistry.shared.remove(self)
    }

    /// Waits (bounded) for the process to exit by itself and returns its raw wait status.
    public func waitForExit(timeout: Duration) throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = exited {
                ChildRegistry.shared.remove(self)
                return status
            }
            usleep(2_000)
        }
        throw HarnessError("\(name) (pid \(pid)) did not exit within \(timeout)")
    }

    /// Waits until a line containing `text` appears in the file, and returns that line.
    /// Fails early, with the file's tail, if the process exits first.
    public func waitForLine(
        containing text: String, in path: String? = nil, timeout: Duration = .seconds(30)
    ) throws -> String {
        let file = path ?? stderrPath
        let deadline = ContinuousClock.now + timeout
        while true {
            if let content = try? String(contentsOfFile: file, encoding: .utf8),
                let line = content.split(separator: "\n").first(where: { $0.contains(text) })
            {
                return String(line)
            }
            if !isRunning {
                throw HarnessError("\(name) exited before printing '\(text)':\n\(Self.tail(of: file))")
            }
            if ContinuousClock.now >= deadline {
                throw HarnessError("\(name) did not print '\(text)' within \(timeout):\n\(Self.tail(of: file))")
            }
            usleep(5_000)
        }
    }

    /// The last lines of a log file, for error messages.
    public static func tail(of path: String, lines: Int = 15) -> String {
        guard let content = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no \(path))" }
        return content.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}

/// Every child the harness started and has not stopped yet.
public final class ChildRegistry: Sendable {
    public static let shared = ChildRegistry()
    private let children = Mutex<[pid_t: ChildProcess]>([:])
    /// Processes the harness started that are not its children (a daemon such as a
    /// PostgreSQL postmaster, started by `pg_ctl`), with the signal that stops each.
    private let external = Mutex<[pid_t: Int32]>([:])
    /// Where the live pids are written, one per line, for `scripts/benchmark`'s trap.
    private let pidFile = Mutex<String?>(nil)

    public func setPidFile(_ path: String) {
        pidFile.withLock { $0 = path }
        writePidFile()
    }

    func add(_ child: ChildProcess) {
        children.withLock { $0[child.pid] = child }
        writePidFile()
    }

    func remove(_ child: ChildProcess) {
        children.withLock { _ = $0.removeValue(forKey: child.pid) }
        writePidFile()
    }

    /// Records a process that is not a child (so `isRunning` cannot reap it): `stopAll` sends
    /// it `stopSignal` after the children are gone, and the pid file lists it.
    public func addExternal(pid: pid_t, stopSignal: Int32) {
        external.withLock { $0[pid] = stopSignal }
        writePidFile()
    }

    /// The caller stopped it itself.
    public func removeExternal(pid: pid_t) {
        external.withLock { _ = $0.removeValue(forKey: pid) }
        writePidFile()
    }

    /// Stops every remaining child: SIGTERM to all, up to `grace` for them to exit, then
    /// SIGKILL. Used on errors and signals; normal teardown stops them one by one.
    /// External processes go last (their clients, the children, are gone by then).
    public func stopAll(grace: Duration = .seconds(5)) {
        let all = children.withLock { Array($0.values) }
        for child in all { child.signal(SIGTERM) }
        let deadline = ContinuousClock.now + grace
        while all.contains(where: \.isRunning), ContinuousClock.now < deadline { usleep(10_000) }
        for child in all where child.isRunning { child.signal(SIGKILL) }
        for child in all {
            let hardDeadline = ContinuousClock.now + .seconds(5)
            while child.isRunning, ContinuousClock.now < hardDeadline { usleep(5_000) }
            remove(child)
        }
        for (pid, number) in external.withLock({ $0 }) {
            kill(pid, number)
            let hardDeadline = ContinuousClock.now + .seconds(10)
            while kill(pid, 0) == 0, ContinuousClock.now < hardDeadline { usleep(10_000) }
            removeExternal(pid: pid)
        }
    }

    private func writePidFile() {
        guard let path = pidFile.withLock({ $0 }) else { return }
        let pids = children.withLock { Array($0.keys) } + external.withLock { Array($0.keys) }
        let text = pids.map { "\($0)\n" }.joined()
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// A failure of the harness itself (a process that did not start, a deadline passed), as
/// opposed to a measured figure that missed its target, which is reported, not thrown.
public struct HarnessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs a short command to completion (bounded) and returns its exit status and output.
public func runCommand(
    _ executable: String, _ arguments: [String], workDir: String, timeout: Duration = .seconds(120)
) throws -> (status: Int32, output: String) {
    let log = workDir + "/cmd-\(UInt32.random(in: 0...UInt32.max)).out"
    defer { unlink(log) }
    let child = try ChildProcess.spawn(
        name: (executable as NSString).lastPathComponent, executable: executable, arguments: arguments,
        stdout: log, stderr: log)
    let status: Int32
    do {
        status = try child.waitForExit(timeout: timeout)
    } catch {
        child.stop()
        throw error
    }
    let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    // A normal exit is (status & 0x7f) == 0 with the code in bits 8–15.
    let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (code, output)
}
