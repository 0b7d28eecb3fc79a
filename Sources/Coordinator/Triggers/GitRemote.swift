import Foundation
import GantryProtocol
import Subprocess
import SystemPackage

/// The one git the coordinator runs: `git ls-remote` of a project's repository, to learn
/// the commit a scheduled build of a branch builds (a pipeline with a repository needs a
/// full commit id, so that every step builds the same one). Off the single writer, with
/// no prompts, no system or global configuration, the transports agents accept (`file`
/// only with `serve --git-allow-file-urls`), bounded in time and output.
enum GitRemote {
    struct Failure: Error, Sendable, CustomStringConvertible {
        var description: String
    }

    static func branchHead(
        repository: String, branch: String, allowFile: Bool, timeout: Duration = .seconds(60)
    ) async throws -> String {
        guard let git = ["/usr/bin/git", "/usr/local/bin/git", "/bin/git"].first(where: FileManager.default.isExecutableFile)
        else { throw Failure(description: "git is not installed on the coordinator's host") }
        let inherited = ProcessInfo.processInfo.environment
        var environment: [Environment.Key: String] = [
            "PATH": "/usr/local/bin:/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_PROTOCOL_FROM_USER": "0",
            "GIT_ALLOW_PROTOCOL": allowFile ? "https:http:ssh:git:file" : "https:http:ssh:git",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=30",
        ]
        if let home = inherited["HOME"] { environment["HOME"] = home }
        let reference = "refs/heads/\(branch)"
        let variables = environment
        let result = try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask {
                let run = try await Subprocess.run(
                    .path(FilePath(git)), arguments: ["ls-remote", "--heads", repository, reference],
                    environment: .custom(variables), workingDirectory: "/", output: .string(limit: 1 << 20), error: .string(limit: 16 << 10))
                guard run.terminationStatus.isSuccess else {
                    let last = run.standardError.split(whereSeparator: \.isNewline).last.map(String.init) ?? "\(run.terminationStatus)"
                    throw Failure(description: "git ls-remote failed: \(last.logSafe(maximum: 300))")
                }
                return run.standardOutput
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            guard let first = try await group.next(), let output = first else {
                group.cancelAll()
                throw Failure(description: "git ls-remote took longer than \(timeout)")
            }
            group.cancelAll()
            return output
        }
        for line in result.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: "\t")
            if fields.count == 2, fields[1] == reference, fields[0].utf8.count == 40,
                fields[0].utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            {
                return String(fields[0])
            }
        }
        throw Failure(description: "the repository has no branch \(branch.logSafe(maximum: 200))")
    }
}
