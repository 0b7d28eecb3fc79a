import Foundation
import Subprocess
import Synchronization
import SystemPackage

/// A real Gantry binary started by a test, stopped by its pid (never by name).
///
/// stdout and stderr are merged into `logFile` (kept for diagnosing failures) and lines
/// are offered to `waitForLine`, so tests wait on conditions with deadlines instead of
/// sleeping.
final class ChildProcess: Sendable {
    let name: String
    let logFile: String
    private let state = Mutex<State>(State())
    private let task: Mutex<Task<TerminationStatus?, Never>?> = Mutex(nil)

    private struct State {
        var pid: pid_t?
        var lines: [String] = []
        var exit: TerminationStatus?
    }

    init(name: String, executable: String, arguments: [String], environment: [String: String] = [:], logFile: String) async throws {
        self.name = name
        self.logFile = logFile
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        var env: [Environment.Key: String?] = [:]
        for (key, value) in environment { env[Environment.Key(rawValue: key)!] = value }
        let started = Mutex(false)
        let runTask = Task<TerminationStatus?, Never> {
            do {
                let result = try await Subprocess.run(
                    .path(FilePath(executable)), arguments: Arguments(arguments), environment: .inherit.updating(env),
                    input: .none, output: .sequence, error: .combinedWithOutput
                ) { execution in
                    self.state.withLock { $0.pid = execution.processIdentifier.value }
                    started.withLock { $0 = true }
                    var pending: [UInt8] = []
                    for try await buffer in execution.standardOutput {
                        let bytes = buffer.withUnsafeBytes { Array($0) }
                        try? handle.write(contentsOf: bytes)
                        pending += bytes
                        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                            let line = String(decoding: pending[..<newline], as: UTF8.self)
                            pending.removeSubrange(...newline)
                            self.state.withLock { $0.lines.append(line) }
                        }
                    }
                }
                self.state.withLock { $0.exit = result.terminationStatus }
                try? handle.close()
                return result.terminationStatus
            } catch {
                try? handle.write(contentsOf: Data("could not start \(executable): \(error)\n".utf8))
                started.withLock { $0 = true }
                return nil
            }
        }
        task.withLock { $0 = runTask }
        try await waitUntil("\(name) started", timeout: .seconds(30)) { started.withLock { $0 } }
    }

    var pid: pid_t? { state.withLock { $0.pid } }
    var lines: [String] { state.withLock { $0.lines } }
    var output: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }
    var hasExited: Bool { state.withLock { $0.exit != nil } }

    /// Waits for a line containing `text` and returns it.
    func waitForLine(containing text: String, timeout: Duration = .seconds(20)) async throws -> String {
        var found: String?
        try await waitUntil("\(name) printing '\(text)'", timeout: timeout) {
            found = self.lines.first { $0.contains(text) }
            return found != nil
        }
        return found!
    }

    func signal(_ number: Int32) {
        if let pid, !hasExited { kill(pid, number) }
    }

    /// Waits for the process to exit and returns its status.
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> TerminationStatus {
        try await waitUntil("\(name) to exit", timeout: timeout) { self.hasExited }
        return state.withLock { $0.exit! }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    func stop(grace: Duration = .seconds(5)) async {
        guard !hasExited else { return }
        signal(SIGTERM)
        if (try? await waitForExit(timeout: grace)) == nil {
            signal(SIGKILL)
            _ = try? await waitForExit(timeout: .seconds(30))
        }
    }
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes. A bounded wait on a
/// condition, never a blind sleep.
func waitUntil(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    if try await condition() { return }
    throw TimedOut(description: "timed out after \(timeout) waiting for \(what)")
}
