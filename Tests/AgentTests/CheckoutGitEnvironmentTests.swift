import Foundation
@testable import GantryAgent
import Subprocess
import SystemPackage
import Testing

/// The environment git gets for a checkout, and the anonymous one of submodules, whose
/// URLs are the repository's choice.
@Suite("Checkout: git's environment", .timeLimit(.minutes(1)))
struct CheckoutGitEnvironmentTests {
    static let ssh = ["/usr/bin/ssh", "/bin/ssh"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test func submodulesGetNoneOfTheAgentsCredentials() throws {
        let home = NSTemporaryDirectory() + "gantry-home-\(UUID().uuidString)"
        let anonymous = GitEnvironment.anonymous(jobID: "j", attempt: 1, home: home)
        #expect(anonymous.variables["HOME"] == home)
        for name in ["SSH_AUTH_SOCK", "GIT_ASKPASS", "SSH_ASKPASS", "XDG_CONFIG_HOME", "GIT_CONFIG_PARAMETERS"] {
            #expect(anonymous.variables[name] == nil, "\(name)")
        }
        #expect(anonymous.variables["GIT_TERMINAL_PROMPT"] == "0")
        #expect(anonymous.variables["GIT_CONFIG_GLOBAL"] == "/dev/null" && anonymous.variables["GIT_CONFIG_NOSYSTEM"] == "1")
        let ssh = try #require(anonymous.variables["GIT_SSH_COMMAND"])
        for option in ["-F /dev/null", "IdentitiesOnly=yes", "IdentityFile=none", "IdentityAgent=none", "BatchMode=yes"] {
            #expect(ssh.contains(option), "\(option) missing from \(ssh)")
        }
        #expect(anonymous.options.contains("core.askPass="))
        // Never a local repository, whatever --git-allow-file-urls says.
        #expect(anonymous.variables["GIT_ALLOW_PROTOCOL"] == "https:http:ssh:git")
        #expect(anonymous.options.contains("protocol.file.allow=never"))
        // The superproject itself is still fetched with the agent's own HOME.
        let own = GitEnvironment(jobID: "j", attempt: 1, allowFile: false)
        #expect(own.variables["HOME"] == ProcessInfo.processInfo.environment["HOME"])
        #expect(own.variables["HOME"] != home)
    }

    /// What ssh would actually use with the submodules' command (`ssh -G` prints the
    /// configuration it evaluated): no key file, no agent.
    @Test(.enabled(if: ssh != nil, "needs ssh"))
    func sshLoadsNoKeyAndAsksNoAgentForSubmodules() async throws {
        let anonymous = GitEnvironment.anonymous(jobID: "j", attempt: 1, home: "/nonexistent")
        let command = try #require(anonymous.variables["GIT_SSH_COMMAND"])
        let result = try await Subprocess.run(
            .path("/bin/sh"), arguments: ["-c", command + " -G 127.0.0.1"],
            environment: .custom(["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]),
            output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        #expect(result.terminationStatus.isSuccess, "\(result.standardError)")
        let lines = Set(result.standardOutput.split(separator: "\n").map { $0.lowercased() })
        for line in ["identityfile none", "identityagent none", "identitiesonly yes", "batchmode yes", "passwordauthentication no"] {
            #expect(lines.contains(line), "\(line) missing from ssh -G")
        }
        #expect(!lines.contains { $0.hasPrefix("identityfile ") && $0 != "identityfile none" })
    }

    @Test func theSubmodulesHomeIsNewEmptyAndPrivate() throws {
        let root = NSTemporaryDirectory() + "gantry-homes-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let first = try SourceCheckout.emptyHome(beside: root + "/job-1")
        let second = try SourceCheckout.emptyHome(beside: root + "/job-1")
        #expect(first != second && first.hasPrefix(root + "/job-1.home-"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: first).isEmpty)
        #expect(AgentDirectories.mode(of: first) == 0o700)
    }
}
