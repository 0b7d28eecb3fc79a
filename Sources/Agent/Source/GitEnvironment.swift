#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The environment and configuration every git the agent runs gets: nothing from the host's
/// or the user's git configuration, nothing that can prompt, and only the transports the
/// checkout allows.
///
/// - `GIT_CONFIG_NOSYSTEM=1`, `GIT_CONFIG_GLOBAL=/dev/null`: no `/etc/gitconfig` or
///   `~/.gitconfig` (no surprise credential helper, `url.*.insteadOf`, hooks path or
///   fsmonitor command); what git needs is passed as `-c` below.
/// - `GIT_TERMINAL_PROMPT=0`, ssh in `BatchMode`, no askpass: a repository that wants a
///   password fails at once instead of hanging the job.
/// - `GIT_ALLOW_PROTOCOL`: the transports git may use at all; `file` only where
///   `allowFile` (the clone from the host's own mirror, or a repository of an agent
///   started with `--git-allow-file-urls`), never for submodules (`anonymous`).
/// - `GANTRY_JOB_ID`/`GANTRY_ATTEMPT`, as a step's commands have them, so a cancel or a
///   timeout finds and kills git like a command (`JobProcesses`).
/// - `HOME` and `PATH` from the agent: ssh finds the agent user's keys and known hosts.
///   Nothing else of the agent's environment (no `SSH_AUTH_SOCK`, no askpass program).
///
/// Submodules get `anonymous(…)` instead: their URLs are the repository's choice.
struct GitEnvironment: Sendable {
    var variables: [String: String]
    /// `-c` options of this environment's commands, after `configuration`.
    var options: [String] = []

    init(jobID: String, attempt: UInt32, allowFile: Bool) {
        let inherited = ProcessInfo.processInfo.environment
        var variables: [String: String] = [:]
        variables["PATH"] = inherited["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        if let home = inherited["HOME"] { variables["HOME"] = home }
        variables["LANG"] = "C"
        variables["LC_ALL"] = "C"
        variables["GIT_CONFIG_NOSYSTEM"] = "1"
        variables["GIT_CONFIG_GLOBAL"] = "/dev/null"
        variables["GIT_TERMINAL_PROMPT"] = "0"
        variables["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes"
        variables["GIT_ALLOW_PROTOCOL"] = Self.allowedProtocols(allowFile: allowFile).joined(separator: ":")
        variables["GIT_PROTOCOL_FROM_USER"] = "0"
        variables["GANTRY_JOB_ID"] = jobID
        variables["GANTRY_ATTEMPT"] = String(attempt)
        self.variables = variables
    }

    /// For `git submodule update`, whose URLs come from the commit's `.gitmodules`: a
    /// pushed commit could otherwise name any private repository the agent's keys can read
    /// and have it cloned into the step's work dir. So the submodules are fetched
    /// anonymously, without any of the agent's credentials:
    ///
    /// - `HOME` is `home`, an empty private directory: no `~/.netrc` for https, no
    ///   `~/.gitconfig` either way;
    /// - ssh reads no configuration (`-F /dev/null`, so no `IdentityFile` or agent from
    ///   `~/.ssh/config` or `/etc/ssh/ssh_config`), loads no key (`IdentitiesOnly=yes`,
    ///   `IdentityFile=none`, and not the default `~/.ssh/id_*`, which ssh finds through
    ///   the password database, not `HOME`) and asks no ssh agent (`IdentityAgent=none`,
    ///   no `SSH_AUTH_SOCK`); the agent user's `known_hosts` still verifies hosts;
    /// - no askpass program and no credential helper;
    /// - never the `file` transport nor a local path, whatever `--git-allow-file-urls`
    ///   says (`GIT_ALLOW_PROTOCOL` without `file`, and `protocol.file.allow=never`): a
    ///   `.gitmodules` naming `/…/git-mirrors/<sha>.git` would read another pipeline's
    ///   mirror, and a local clone hard-links the mirror's objects into the work dir, where
    ///   the hand-over to the step user would make them the step user's.
    ///
    /// Credentials embedded in the superproject's URL still reach submodules whose URLs
    /// are relative to it (git resolves them against `remote.origin.url`): that is the
    /// submitter's own credential for the submitter's own host.
    static func anonymous(jobID: String, attempt: UInt32, home: String) -> GitEnvironment {
        var environment = GitEnvironment(jobID: jobID, attempt: attempt, allowFile: false)
        environment.variables["HOME"] = home
        environment.variables["GIT_SSH_COMMAND"] = anonymousSSHCommand
        environment.options = ["-c", "core.askPass=", "-c", "protocol.file.allow=never"]
        return environment
    }

    /// ssh without configuration, keys or agent (`anonymous`).
    static let anonymousSSHCommand =
        "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o IdentityFile=none "
        + "-o IdentityAgent=none -o PKCS11Provider=none -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no "
        + "-o GSSAPIAuthentication=no -o HostbasedAuthentication=no"

    static func allowedProtocols(allowFile: Bool) -> [String] {
        ["https", "http", "ssh", "git"] + (allowFile ? ["file"] : [])
    }

    /// `-c` options before every git command: no hooks, no fsmonitor, no credential
    /// helper, no automatic gc (a mirror is shared by every slot; `gc.auto=0`). No
    /// `safe.directory`: every repository the agent works in is its own (the work dir is
    /// handed to the step user only after the checkout), so git's ownership check stays on.
    static let configuration = [
        "-c", "core.hooksPath=/dev/null",
        "-c", "core.fsmonitor=false",
        "-c", "credential.helper=",
        "-c", "gc.auto=0",
        "-c", "maintenance.auto=false",
        "-c", "advice.detachedHead=false",
        "-c", "protocol.version=2",
    ]
}
