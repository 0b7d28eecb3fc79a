import Foundation
import Subprocess
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Real git repositories a test creates under its own directory: a work repository with
/// commits, a bare copy served over `file://`, and optionally a `git daemon` on 127.0.0.1
/// (started detached with a pid file, stopped by that pid).
struct GitFixture {
    let root: String

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// git's own config and identity kept out of the tests, like the agent keeps them out.
    static let environment: [String: String] = [
        "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_TERMINAL_PROMPT": "0",
    ]

    /// Runs `script` with `/bin/sh -e` in `directory`; returns its standard output.
    @discardableResult
    func sh(_ script: String, in directory: String? = nil) async throws -> String {
        var custom: [Environment.Key: String] = [:]
        for (key, value) in Self.environment { if let name = Environment.Key(rawValue: key) { custom[name] = value } }
        let result = try await Subprocess.run(
            .path("/bin/sh"), arguments: ["-e", "-c", script], environment: .custom(custom),
            workingDirectory: FilePath(directory ?? root), output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        guard result.terminationStatus.isSuccess else {
            throw Failure(description: "`\(script)` failed: \(result.standardError)")
        }
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A repository `name` with `commits` commits (file `hello.txt` says `hello N`), and
    /// its bare copy `name.git`; returns the bare path and the commit ids, oldest first.
    func repository(_ name: String, commits: Int = 1) async throws -> (bare: String, commits: [String]) {
        let work = "\(root)/\(name)-work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try await sh("git -c init.defaultBranch=main init -q .", in: work)
        var ids: [String] = []
        for index in 1...commits {
            try await sh("echo 'hello \(index)' > hello.txt && git add hello.txt && git commit -q -m 'commit \(index)'", in: work)
            ids.append(try await sh("git rev-parse HEAD", in: work))
        }
        let bare = "\(root)/\(name).git"
        try await sh("git clone -q --bare '\(work)' '\(bare)'")
        return (bare, ids)
    }

    /// A free TCP port on 127.0.0.1 (bound, read and released: the daemon takes it next).
    static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw Failure(description: "socket() failed") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(socket, pointer, length) == 0 && getsockname(socket, pointer, &length) == 0
            }
        }
        guard bound else { throw Failure(description: "bind() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A `git daemon` serving every repository under `root` read-only on 127.0.0.1.
    struct Daemon {
        let port: Int
        let pid: pid_t

        func url(_ name: String) -> String { "git://127.0.0.1:\(port)/\(name)" }

        /// SIGTERM, then waits (bounded) until the process is gone, and SIGKILLs it if it is
        /// not: a daemon must never outlive its test.
        func stop() async {
            kill(pid, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(10)
            while kill(pid, 0) == 0, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
    }

    func startDaemon(serving repository: String) async throws -> Daemon {
        let port = try Self.freePort()
        let pidFile = "\(root)/daemon-\(port).pid"
        try await sh(
            "git daemon --detach --reuseaddr --listen=127.0.0.1 --port=\(port) --pid-file='\(pidFile)' "
                + "--base-path='\(root)' --export-all '\(root)'")
        // The detached child writes its pid file after the parent has exited (bounded: 30 s).
        let deadline = ContinuousClock.now + .seconds(30)
        var pid: pid_t?
        while pid == nil {
            let text = (try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? ""
            pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
            if pid == nil {
                guard ContinuousClock.now < deadline else { throw Failure(description: "no pid in \(pidFile) within 30 s") }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        guard let pid, pid > 0 else { throw Failure(description: "no pid in \(pidFile)") }
        let daemon = Daemon(port: port, pid: pid)
        // Ready when it answers (bounded by the same deadline).
        while true {
            if (try? await sh("git ls-remote '\(daemon.url(repository))' > /dev/null")) != nil { return daemon }
            guard ContinuousClock.now < deadline else {
                await daemon.stop()
                throw Failure(description: "git daemon on port \(port) did not answer within 10 s")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
