import Subprocess
import SystemPackage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Runs one git command for a checkout like a step's command: in its own session, under
/// the attempt's `ProcessGroupControl` (so the step's timeout and a cancel kill it, TERM
/// then KILL), with `GitEnvironment` and no standard input, its output collected (bounded)
/// for the log.
struct GitCommand: Sendable {
    var git: String
    var environment: GitEnvironment
    var control: ProcessGroupControl
    /// Each command's output kept for the log: git is quiet when it works; when it fails,
    /// its last lines say why.
    static let maximumOutputBytes = 16 * 1024

    struct Outcome: Sendable {
        /// The exit status; nil when git was killed by a signal.
        var status: Int32?
        /// Standard output and error, merged, at most `maximumOutputBytes` (the tail).
        var output: String
        var succeeded: Bool { status == 0 }
    }

    /// git on the agent's PATH, or nil if there is none.
    static func find(path: String? = ProcessInfo.processInfo.environment["PATH"]) -> String? {
        let directories = (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
        for directory in directories where directory.hasPrefix("/") {
            let candidate = "\(directory)/git"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `git <configuration> <arguments>` in `directory`.
    func run(_ arguments: [String], in directory: String) async throws -> Outcome {
        var options = PlatformOptions()
        options.createSession = true
        var custom: [Environment.Key: String] = [:]
        for (key, value) in environment.variables {
            if let name = Environment.Key(rawValue: key) { custom[name] = value }
        }
        let control = self.control
        let spawn = OrphanReaper.SpawnGuard()
        let result = try await Subprocess.run(
            .path(FilePath(git)),
            arguments: Arguments(GitEnvironment.configuration + environment.options + arguments),
            environment: .custom(custom), workingDirectory: FilePath(directory), platformOptions: options,
            input: .none, output: .sequence, error: .combinedWithOutput
        ) { execution in
            let pid = execution.processIdentifier.value
            control.started(processGroup: pid)
            spawn.end()
            _ = control.cgroup?.add(processID: pid)
            var tail: [UInt8] = []
            do {
                for try await buffer in execution.standardOutput {
                    buffer.withUnsafeBytes { tail.append(contentsOf: $0) }
                    if tail.count > Self.maximumOutputBytes { tail.removeFirst(tail.count - Self.maximumOutputBytes) }
                }
            } catch {
                control.leaderExited(processGroup: pid)
                throw error
            }
            return tail
        }
        control.leaderExited(processGroup: result.processIdentifier.value)
        let output = String(decoding: result.closureResult, as: UTF8.self)
        switch result.terminationStatus {
        case .exited(let code): return Outcome(status: code, output: output)
        case .signaled: return Outcome(status: nil, output: output)
        }
    }
}
