import Foundation
import Synchronization

/// A private PostgreSQL server for this test process: `initdb` into a temporary directory,
/// started with `pg_ctl`, listening only on a Unix socket in that directory, and stopped
/// by its postmaster's pid when the process exits. Each store under test gets a database
/// of its own (`makeDatabase()`), so tests run in parallel without seeing each other.
///
/// PostgreSQL refuses to run as root (CI runs as root), so then the server runs as the
/// system user `gantry-pg`, created here if missing. Durability is off (`fsync=off`): the
/// tests check what the store does, not the disk; `scripts/benchmark` measures with it on,
/// on a server of its own (`startDurable(in:)`, stopped with `stop()`).
///
/// A target of its own, shared by the store tests and the integration tests; it links
/// nothing of Gantry, so both test targets can use it.
public final class PostgresServer: Sendable {
    public static let shared: Result<PostgresServer, any Error> = Result {
        let server = try PostgresServer(durable: false, parent: NSTemporaryDirectory())
        // Stop it when the test process ends: SIGINT is PostgreSQL's fast shutdown.
        PostgresServer.stopAtExit(pid: server.postmasterPID, directory: server.directory)
        return server
    }

    /// A server of its own with PostgreSQL's default durability (fsync, synchronous_commit
    /// and full_page_writes on), its files in a new directory under `parent`, for measuring
    /// what commits cost on this disk. Nothing stops it at exit: the caller calls `stop()`.
    public static func startDurable(in parent: String = NSTemporaryDirectory()) throws -> PostgresServer {
        try PostgresServer(durable: true, parent: parent)
    }

    public let directory: String
    public let socketDirectory: String
    public let postmasterPID: Int32
    /// The server's binaries (psql, pgbench, pg_test_fsync are next to initdb).
    public let bin: String
    /// The superuser role every database is reached as (trust authentication on the socket).
    public static let user = "gantry"

    private init(durable: Bool, parent: String) throws {
        let bin = try Self.binDirectory()
        self.bin = bin
        directory = (parent.hasSuffix("/") ? parent : parent + "/") + "gantry-pg-\(getpid())-\(UUID().uuidString.prefix(8))"
        socketDirectory = directory + "/socket"
        let data = directory + "/data"
        try FileManager.default.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        let runAs = getuid() == 0 ? try Self.serviceUser() : nil
        if let runAs { try Self.run("/bin/chown", ["-R", runAs, directory]) }
        try Self.run(bin + "/initdb", ["-D", data, "-U", Self.user, "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"], as: runAs)
        let durability = durable ? "" : " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        let options = "-k \(socketDirectory) -c listen_addresses=''\(durability) -c max_connections=300"
        try Self.run(bin + "/pg_ctl", ["-D", data, "-o", options, "-l", directory + "/server.log", "-w", "-t", "60", "start"], as: runAs)
        let pidLine = try String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8).split(separator: "\n").first ?? ""
        guard let pid = Int32(pidLine), pid > 0 else { throw ServerError("no postmaster pid in \(data)/postmaster.pid") }
        postmasterPID = pid
    }

    /// Stops the server by its postmaster's pid (SIGINT: fast shutdown), waits up to 10 s
    /// for it to exit (SIGKILL after that), and removes its directory.
    public func stop() {
        kill(postmasterPID, SIGINT)
        for _ in 0..<200 where kill(postmasterPID, 0) == 0 { usleep(50_000) }
        if kill(postmasterPID, 0) == 0 { kill(postmasterPID, SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A new, empty database on this server, as a URL for `PostgresStore` or `--database`.
    public func makeDatabase() throws -> String {
        let name = "gantry_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(20).lowercased())"
        try Self.run(bin + "/createdb", ["-h", socketDirectory, "-U", Self.user, name])
        return url(database: name)
    }

    public func url(database: String) -> String {
        "postgres:///\(database)?host=\(socketDirectory)&user=\(Self.user)"
    }

    // MARK: - Processes

    struct ServerError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// The newest installed server's binaries (Debian: /usr/lib/postgresql/N/bin), or
    /// `GANTRY_POSTGRES_BIN`.
    static func binDirectory() throws -> String {
        if let bin = ProcessInfo.processInfo.environment["GANTRY_POSTGRES_BIN"] { return bin }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        guard let newest = versions.last, FileManager.default.isExecutableFile(atPath: "\(root)/\(newest)/bin/initdb") else {
            throw ServerError("no PostgreSQL server under \(root): run scripts/install-dependencies (apt-get install postgresql)")
        }
        return "\(root)/\(newest)/bin"
    }

    /// The unprivileged user the server runs as when the tests run as root.
    static func serviceUser() throws -> String {
        let name = "gantry-pg"
        if getpwnam(name) == nil {
            try run("/usr/sbin/useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
        }
        return name
    }

    /// Runs a command to its end with posix_spawn (Foundation's `Process.waitUntilExit`
    /// can hang here, and its children start with SIGTERM blocked), its output in a file.
    static func run(_ executable: String, _ arguments: [String], as user: String? = nil) throws {
        let argv = user.map { ["/usr/sbin/runuser", "-u", $0, "--", executable] } ?? [executable]
        let all = argv + arguments
        let output = NSTemporaryDirectory() + "gantry-pg-command-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cArguments = all.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, all[0], &actions, nil, &cArguments, environ)
        guard spawned == 0 else { throw ServerError("cannot start \(all[0]): errno \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let exited = (status & 0x7f) == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            throw ServerError("\(all.joined(separator: " ")) failed (status \(status)): \(text)")
        }
    }

    private static func stopAtExit(pid: Int32, directory: String) {
        stopping.withLock { $0 = (pid, directory) }
        atexit {
            guard let (pid, directory) = PostgresServer.stopping.withLock({ $0 }) else { return }
            kill(pid, SIGINT)
            // Wait (bounded) for the postmaster to go, then remove its files.
            for _ in 0..<100 where kill(pid, 0) == 0 { usleep(50_000) }
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    private static let stopping = Mutex<(Int32, String)?>(nil)
}
