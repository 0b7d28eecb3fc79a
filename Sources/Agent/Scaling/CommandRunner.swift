import Subprocess
import SystemPackage

/// Runs an administrative command (systemctl, a user's scaling script) to completion and
/// returns its output, or throws with its status and output when it fails.
enum CommandRunner {
    static let outputLimit = 64 * 1024

    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws
        -> String
    {
        let target: Executable = executable.contains("/") ? .path(FilePath(executable)) : .name(executable)
        var updates: [Environment.Key: String?] = [:]
        for (key, value) in environment {
            if let name = Environment.Key(rawValue: key) { updates[name] = value }
        }
        let result = try await Subprocess.run(
            target, arguments: Arguments(arguments), environment: .inherit.updating(updates), input: .none,
            output: .string(limit: outputLimit), error: .string(limit: outputLimit))
        let output = trimmed(result.standardOutput + result.standardError)
        switch result.terminationStatus {
        case .exited(0):
            return result.standardOutput
        case .exited(let code):
            throw SlotProviderError.commandFailed(
                command: ([executable] + arguments).joined(separator: " "), status: "exited \(code)", output: output)
        case .signaled(let signal):
            throw SlotProviderError.commandFailed(
                command: ([executable] + arguments).joined(separator: " "), status: "killed by signal \(signal)",
                output: output)
        }
    }

    /// `text` without leading and trailing whitespace and newlines.
    static func trimmed(_ text: String) -> String {
        guard let first = text.firstIndex(where: { !$0.isWhitespace }), let last = text.lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(text[first...last])
    }
}
