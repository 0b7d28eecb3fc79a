import CGantryShims

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

/// The unprivileged user a slot's steps run as, so that a step cannot read the agent's
/// private key, state, spool or environment, nor another slot's work (each slot has its
/// own step user; an attempt's work dir is 0700 and owned by it).
///
/// Needs an agent that can switch users: root, or the capabilities CAP_SETUID and
/// CAP_SETGID (gantry-agent@.service grants them; see docs/operations.md). The step gets
/// the user's uid and primary gid, no supplementary groups and no capabilities: each
/// command is started as `setpriv --reuid --regid --clear-groups --inh-caps=-all
/// --ambient-caps=-all -- /bin/sh ...` (util-linux, essential on Debian).
public struct StepUser: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var uid: uid_t
    public var gid: gid_t
    /// The user's home directory from the password database, if it exists.
    public var home: String?
    /// The setpriv(1) that switches to the user.
    public var setpriv: String

    public init(name: String, uid: uid_t, gid: gid_t, home: String?, setpriv: String = StepUser.setprivPath ?? "/usr/bin/setpriv") {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        self.setpriv = setpriv
    }

    /// Where setpriv is, if installed.
    public static let setprivPath: String? = ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// setpriv's arguments up to the program: the user's ids, no supplementary groups, and
    /// no inheritable or ambient capabilities, so the step execs with none (an agent that
    /// is not root keeps CAP_SETUID/CAP_SETGID ambient only so setpriv receives them).
    public var setprivArguments: [String] {
        ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--inh-caps=-all", "--ambient-caps=-all", "--"]
    }

    public var description: String { "\(name) (uid \(uid), gid \(gid))" }

    /// `pattern` with `{slot}` replaced by the slot name, so one option serves every slot
    /// (`--step-user 'gantry-step-{slot}'`); systemd units can also use `%i`.
    public static func name(pattern: String, slot: String) -> String {
        pattern.replacing("{slot}", with: slot)
    }

    /// Looks the user up and checks it is fit to run steps: it exists, is not root, and
    /// is not the user the agent runs as (steps would then be able to read its files).
    public static func resolve(_ name: String, agentUID: uid_t = geteuid()) throws -> StepUser {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        let status = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard status == 0, let found = result else {
            throw IsolationError.stepUser(
                "no user named '\(name)' (create it: useradd --system --no-create-home --shell /usr/sbin/nologin \(name))")
        }
        let uid = found.pointee.pw_uid
        let gid = found.pointee.pw_gid
        guard uid != 0, gid != 0 else {
            throw IsolationError.stepUser("'\(name)' is root (uid or gid 0): steps must run unprivileged")
        }
        guard let setpriv = setprivPath else {
            throw IsolationError.stepUser("setpriv(1) is not installed (Debian: util-linux); it starts steps as the step user")
        }
        guard uid != agentUID else {
            throw IsolationError.stepUser(
                "'\(name)' is the user the agent runs as: steps could read the agent's key and state")
        }
        var home: String? = found.pointee.pw_dir.map { String(cString: $0) }
        var isDirectory = false
        if let path = home, path.isEmpty || path == "/" || path == "/nonexistent"
            || !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) || !isDirectory
        {
            home = nil
        }
        return StepUser(name: name, uid: uid, gid: gid, home: home, setpriv: setpriv)
    }
}

/// What the agent process can do to keep steps away from its secrets.
public enum ProcessHardening {
    /// Whether this process may start children as another user (root, or CAP_SETUID and
    /// CAP_SETGID effective).
    public static var canSwitchUsers: Bool { gantry_can_switch_users() != 0 }

    /// Applied at every agent start, whatever user it runs as:
    /// - non-dumpable (prctl PR_SET_DUMPABLE 0): `/proc/<agent>/environ`, `mem`, `fd` are
    ///   root's and ptrace is refused, so even a step running as the agent's own user
    ///   cannot read its environment or memory through /proc;
    /// - without a step user, no ambient or inheritable capabilities: capabilities given
    ///   to the agent are not passed on to the steps it execs. With a step user they stay,
    ///   because the setpriv that switches users needs them; it clears both before it execs
    ///   the step (`StepUser.setprivArguments`).
    /// Returns a description of each step that failed (empty when all applied).
    @discardableResult
    public static func apply(keepCapabilitiesForSetpriv: Bool = false) -> [String] {
        var failures: [String] = []
        if gantry_set_not_dumpable() != 0 {
            failures.append("prctl(PR_SET_DUMPABLE, 0) failed: \(String(cString: strerror(errno)))")
        }
        if !keepCapabilitiesForSetpriv && gantry_drop_inheritable_capabilities() != 0 {
            failures.append("clearing the ambient and inheritable capabilities failed: \(String(cString: strerror(errno)))")
        }
        return failures
    }

    public static var isDumpable: Bool { gantry_dumpable() == 1 }

    /// The warning logged at start when steps run as the agent's own user: exactly what a
    /// step can then read (docs/operations.md says the same).
    public static func sameUserWarning(reason: String, stateDirectory: String, workRoot: String) -> String {
        "STEPS RUN AS THE AGENT'S OWN USER (\(reason)). A step can then read and write everything this user can: "
            + "the agent's private key and certificate (\(stateDirectory)/agent.key, agent.pem), its state and the "
            + "unacknowledged logs of every slot in \(stateDirectory)/spool, the work dirs of other jobs of this user "
            + "under \(workRoot), and with the key it can connect to the coordinator as this host and take other "
            + "jobs (their commands and secrets). It cannot read the agent's environment (the agent is non-dumpable). "
            + "Run the agent as root or with CAP_SETUID and CAP_SETGID and pass --step-user (see docs/operations.md)."
    }
}

public enum IsolationError: Error, CustomStringConvertible, Sendable {
    case stepUser(String)
    case directory(String)

    public var description: String {
        switch self {
        case .stepUser(let why): return "--step-user: \(why)"
        case .directory(let why): return why
        }
    }
}
