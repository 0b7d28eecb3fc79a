import Foundation
@testable import GantryAgent
import GantryProtocol
import Testing

/// Directory modes, the step user, and what a step running as it can reach (finding 3 of
/// issue 10). Tests that switch users need root and use `nobody`, which every Debian has.
@Suite("Step isolation", .timeLimit(.minutes(1)))
struct StepIsolationUnitTests {
    let root = NSTemporaryDirectory() + "gantry-isolation-\(UUID().uuidString)"

    static var isRoot: Bool { geteuid() == 0 }
    static var nobody: StepUser? { try? StepUser.resolve("nobody") }

    @Test func agentDirectoriesAreCreated0700WithTheirParentsWhateverTheUmask() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let previous = umask(0o002)
        defer { umask(previous) }
        let spool = root + "/state/spool/host_1"
        #expect(try AgentDirectories.ensure(spool) == nil)
        #expect(AgentDirectories.mode(of: spool) == 0o700)
        #expect(AgentDirectories.mode(of: root + "/state/spool") == 0o700)
        #expect(AgentDirectories.mode(of: root + "/state") == 0o700)
        // The work root for step users: traversable, not listable.
        #expect(try AgentDirectories.ensure(root + "/work", mode: AgentDirectories.sharedWorkRootMode) == nil)
        #expect(AgentDirectories.mode(of: root + "/work") == 0o711)
    }

    @Test func anExistingDirectoryOfTheAgentIsTightenedButASharedOneIsLeftAlone() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true)
        chmod(root + "/state", 0o755)
        #expect(try AgentDirectories.ensure(root + "/state") == nil)
        #expect(AgentDirectories.mode(of: root + "/state") == 0o700)
        // A sticky, world-writable dir (like /tmp) is not the agent's to chmod.
        try FileManager.default.createDirectory(atPath: root + "/shared", withIntermediateDirectories: true)
        chmod(root + "/shared", 0o1777)
        let warning = try AgentDirectories.ensure(root + "/shared")
        #expect(warning?.contains("not this agent's to change") == true)
        #expect(AgentDirectories.mode(of: root + "/shared") == 0o1777)
        // A file where a directory should be is an error, not a silent success.
        _ = FileManager.default.createFile(atPath: root + "/file", contents: Data())
        #expect(throws: IsolationError.self) { try AgentDirectories.ensure(root + "/file") }
    }

    @Test func theAttemptWorkDirIsPrivateAndRemovedAfterwards() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let runner = JobRunner(agentID: "h/1", workRoot: root + "/work", keepWorkDirs: false)
        let spool = try LogSpool(path: NSTemporaryDirectory() + "gantry-isolation-spool-\(UUID().uuidString)")
        defer { spool.remove() }
        let spec = JobRunner.Spec(lease: .with {
            $0.jobID = "job-\(UUID().uuidString)"
            $0.attempt = 1
            $0.commands = [#"stat -c %a "$GANTRY_WORK_DIR"; stat -c %a "$GANTRY_WORK_DIR/..""#]
        })
        let control = ProcessGroupControl(jobID: spec.jobID, attempt: spec.attempt, grace: .seconds(1))
        let result = await runner.run(spec, spool: spool, control: control) {}
        #expect(result.outcome == .succeeded)
        #expect(String(decoding: try spool.read(from: 0, count: spool.length), as: UTF8.self) == "700\n700\n")
        #expect(!FileManager.default.fileExists(atPath: runner.workDirectory(for: spec)))
    }

    @Test func stepUserNamesExpandTheSlotAndRootOrTheAgentItselfIsRefused() throws {
        #expect(StepUser.name(pattern: "gantry-step-{slot}", slot: "3") == "gantry-step-3")
        #expect(StepUser.name(pattern: "builder", slot: "3") == "builder")
        #expect(throws: IsolationError.self) { try StepUser.resolve("root") }
        #expect(throws: IsolationError.self) { try StepUser.resolve("no-such-user-\(UInt32.random(in: 0...UInt32.max))") }
        if let nobody = Self.nobody {
            #expect(throws: IsolationError.self) { try StepUser.resolve("nobody", agentUID: nobody.uid) }
        }
    }

    @Test(.enabled(if: isRoot && nobody != nil, "needs root and the user nobody"))
    func aStepRunsAsTheStepUserWithoutGroupsAndCannotReadTheAgent() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nobody = try #require(Self.nobody)
        try AgentDirectories.ensure(root + "/state")
        try "secret key".write(toFile: root + "/state/agent.key", atomically: true, encoding: .utf8)
        chmod(root + "/state/agent.key", 0o600)
        // The test's own directory must be traversable for the step to reach its work dir.
        chmod(root, 0o755)
        let runner = JobRunner(agentID: "h/1", workRoot: root + "/work", keepWorkDirs: false, stepUser: nobody)
        try AgentDirectories.ensure(root + "/work", mode: runner.workRootMode)
        let other = root + "/work/other-job-1"
        try AgentDirectories.createWorkDirectory(other, owner: nil)
        let spool = try LogSpool(path: root + "/state/spool.log")
        defer { spool.remove() }
        let spec = JobRunner.Spec(lease: .with {
            $0.jobID = "job-\(UUID().uuidString)"
            $0.attempt = 1
            $0.commands = [
                #"echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) user=$USER""#,
                #"stat -c 'owner=%u mode=%a' "$GANTRY_WORK_DIR"; touch "$GANTRY_WORK_DIR/made" && echo wrote-own"#,
                "cat \(root)/state/agent.key >/dev/null 2>&1 && echo READ-KEY || echo key-denied",
                "cat /proc/$PPID/environ >/dev/null 2>&1 && echo READ-ENVIRON || echo environ-denied",
                "ls \(root)/work >/dev/null 2>&1 && echo LISTED-ROOT || echo root-unlisted",
                "ls \(other) >/dev/null 2>&1 && echo READ-OTHER || echo other-denied",
            ]
        })
        let control = ProcessGroupControl(jobID: spec.jobID, attempt: spec.attempt, grace: .seconds(1))
        let result = await runner.run(spec, spool: spool, control: control) {}
        let output = String(decoding: try spool.read(from: 0, count: spool.length), as: UTF8.self)
        #expect(result.outcome == .succeeded, "\(output)")
        #expect(output.contains("uid=\(nobody.uid) gid=\(nobody.gid) groups=\(nobody.gid) user=nobody"), "\(output)")
        #expect(output.contains("owner=\(nobody.uid) mode=700"), "\(output)")
        for line in ["wrote-own", "key-denied", "environ-denied", "root-unlisted", "other-denied"] {
            #expect(output.contains(line), "\(line) missing from: \(output)")
        }
        // The agent removes the step user's work dir, files and all.
        #expect(!FileManager.default.fileExists(atPath: runner.workDirectory(for: spec)))
    }

    @Test(.enabled(if: isRoot && nobody != nil && JobCgroup.isAvailable, "needs root, nobody and a writable cgroup2 hierarchy"))
    func theAgentMovesAStepUserIntoTheAttemptsCgroupBeforeItRuns() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nobody = try #require(Self.nobody)
        try AgentDirectories.ensure(root)
        chmod(root, 0o755)
        let runner = JobRunner(agentID: "h/1", workRoot: root + "/work", keepWorkDirs: false, stepUser: nobody)
        let spool = try LogSpool(path: root + "/spool.log")
        defer { spool.remove() }
        let spec = JobRunner.Spec(lease: .with {
            $0.jobID = "job-\(UUID().uuidString)"
            $0.attempt = 1
            $0.commands = ["cat /proc/self/cgroup; sleep 30 & echo started; read line; echo \"stdin=[$line]\""]
        })
        let control = ProcessGroupControl(jobID: spec.jobID, attempt: spec.attempt, grace: .milliseconds(200))
        let cgroup = try #require(control.cgroup)
        let result = await runner.run(spec, spool: spool, control: control) {}
        let output = String(decoding: try spool.read(from: 0, count: spool.length), as: UTF8.self)
        #expect(result.outcome == .succeeded, "\(output)")
        let name = (cgroup.path as NSString).lastPathComponent
        #expect(output.contains(name), "\(output)")
        #expect(output.contains("stdin=[]"), "\(output)")
        // The background sleep (the step user's) was killed with the cgroup.
        #expect(!FileManager.default.fileExists(atPath: cgroup.path))
    }

    @Test func hardeningMakesTheProcessNonDumpable() {
        // Harmless for the test process (it stays able to read its own /proc files).
        #expect(ProcessHardening.apply().isEmpty)
        #expect(!ProcessHardening.isDumpable)
        #expect(FileManager.default.contents(atPath: "/proc/self/cgroup") != nil)
    }

    @Test func theSameUserWarningSaysWhatAStepCanRead() {
        let warning = ProcessHardening.sameUserWarning(reason: "no --step-user given", stateDirectory: "/s", workRoot: "/w")
        #expect(warning.contains("/s/agent.key"))
        #expect(warning.contains("/s/spool"))
        #expect(warning.contains("--step-user"))
    }
}
