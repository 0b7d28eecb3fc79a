import Subprocess
import SystemPackage

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

/// Gives an attempt's work dir to its step user once the agent is done preparing it.
///
/// Until then the work dir is the agent's, 0700: while the agent's git writes a checkout
/// into it, no process of the step user (one left over from an earlier attempt included)
/// can enter it, swap `.git` for a repository of its own and have git run its filters or
/// config as the agent. git's ownership check then holds without `safe.directory`.
enum WorkDirectoryHandover {
    /// `chown(2)` for an empty work dir; otherwise `chown -R -P -h` (links are changed,
    /// never followed), which runs before any step command, so nothing of the step's can
    /// race it.
    static func handOver(_ directory: String, to user: StepUser) async throws(IsolationError) {
        func failure(_ why: String) -> IsolationError {
            .directory("cannot give work dir \(directory) to \(user): \(why)")
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        if entries.isEmpty {
            guard lchown(directory, user.uid, user.gid) == 0 else { throw failure(String(cString: strerror(errno))) }
            return
        }
        let chown = ["/usr/bin/chown", "/bin/chown"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let chown else { throw failure("chown(1) is not installed") }
        let outcome: (succeeded: Bool, error: String)
        do {
            let result = try await Subprocess.run(
                .path(FilePath(chown)), arguments: ["-R", "-P", "-h", "\(user.uid):\(user.gid)", "--", directory],
                environment: .custom([:]), output: .discarded, error: .string(limit: 4096))
            outcome = (result.terminationStatus.isSuccess, result.standardError)
        } catch {
            throw failure("\(error)")
        }
        guard outcome.succeeded else {
            let line = outcome.error.split(whereSeparator: \.isNewline).last.map(String.init) ?? "chown failed"
            throw failure(line.logSafe(maximum: 300))
        }
    }

    /// The work dir when its checkout is an overlay mounted at `mountPoint` (the work dir
    /// or a directory right in it, `SourceCheckout.workTrees(for:)`): the work dir and the
    /// mount point are all it holds yet, and the mount's files are the step user's
    /// already (`WorkTrees`), so the two are changed one by one; a recursive chown would
    /// copy every file of the tree up into the overlay. The mount point first: once the
    /// work dir is the step user's, a process of that user could replace any entry of it
    /// but a mount point.
    static func handOver(_ directory: String, to user: StepUser, mountedAt mountPoint: String) throws(IsolationError) {
        for path in mountPoint == directory ? [directory] : [mountPoint, directory]
        where lchown(path, user.uid, user.gid) != 0 {
            throw .directory("cannot give \(path) to \(user): \(String(cString: strerror(errno)))")
        }
    }

    /// Gives `uid:gid` every file under `path` that is someone else's (`find … -exec chown
    /// -h`; links are changed, never followed). For a work tree, where git wrote only the
    /// files a commit changed, this touches only those.
    static func giveMismatched(_ path: String, uid: UInt32, gid: UInt32) async throws(IsolationError) {
        let find = ["/usr/bin/find", "/bin/find"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let find else { throw .directory("find(1) is not installed") }
        let owner = "\(uid):\(gid)"
        let arguments = [
            path, "(", "!", "-uid", "\(uid)", "-o", "!", "-gid", "\(gid)", ")", "-exec", "chown", "-h", owner, "--", "{}", "+",
        ]
        let outcome: (succeeded: Bool, error: String)
        do {
            let result = try await Subprocess.run(
                .path(FilePath(find)), arguments: Arguments(arguments), environment: .custom(["PATH": "/usr/bin:/bin"]),
                output: .discarded, error: .string(limit: 4096))
            outcome = (result.terminationStatus.isSuccess, result.standardError)
        } catch {
            throw .directory("cannot give \(path) to \(owner): \(error)")
        }
        guard outcome.succeeded else {
            let line = outcome.error.split(whereSeparator: \.isNewline).last.map(String.init) ?? "chown failed"
            throw .directory("cannot give \(path) to \(owner): \(line.logSafe(maximum: 300))")
        }
    }
}
