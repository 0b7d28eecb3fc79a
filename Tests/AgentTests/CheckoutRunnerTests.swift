import Foundation
@testable import GantryAgent
import GantryProtocol
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Checkout by the agent with real repositories this test creates: bare repositories over
/// `file://` and a `git daemon` on 127.0.0.1, through `JobRunner.run` as a lease runs.
@Suite("Checkout: the agent checks out the source", .timeLimit(.minutes(3)))
final class CheckoutRunnerTests {
    let root = NSTemporaryDirectory() + "gantry-checkout-\(UUID().uuidString)"
    var fixture: GitFixture { GitFixture(root: root + "/repos") }
    var mirrors: String { root + "/mirrors" }

    init() throws {
        try FileManager.default.createDirectory(atPath: root + "/repos", withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    func spec(
        _ commands: [String], repository: String, commit: String, checkout: Gantry_V1_CheckoutSpec? = .with { $0.enabled = true },
        timeout: Duration? = nil
    ) -> JobRunner.Spec {
        var spec = JobRunner.Spec(lease: .with {
            $0.jobID = "job-\(UUID().uuidString)"
            $0.attempt = 1
            $0.pipelineID = "p"
            $0.stepKey = "build"
            $0.commands = commands
            $0.repository = repository
            $0.commit = commit
            if let checkout { $0.checkout = checkout }
        })
        spec.timeout = timeout
        return spec
    }

    func run(
        _ spec: JobRunner.Spec, allowFile: Bool = true, lockTimeout: Duration = .seconds(60),
        checkoutTimeout: Duration = .seconds(60 * 60)
    ) async throws -> (JobRunner.Result, String) {
        try await Self.run(
            spec, root: root, mirrors: mirrors, allowFile: allowFile, lockTimeout: lockTimeout, checkoutTimeout: checkoutTimeout)
    }

    static func run(
        _ spec: JobRunner.Spec, root: String, mirrors: String, allowFile: Bool = true, lockTimeout: Duration = .seconds(60),
        checkoutTimeout: Duration = .seconds(60 * 60), stepUser: StepUser? = nil, keepWorkDirs: Bool = false,
        workTrees: Int = 2
    ) async throws -> (JobRunner.Result, String) {
        var gitMirrors = GitMirrors(directory: mirrors, allowFileURLs: allowFile, lockTimeout: lockTimeout, checkoutTimeout: checkoutTimeout)
        gitMirrors.workTreesPerRepository = workTrees
        let runner = JobRunner(
            agentID: "h/1", workRoot: root + "/work", keepWorkDirs: keepWorkDirs, stepUser: stepUser, gitMirrors: gitMirrors)
        let spool = try LogSpool(path: root + "/spool-\(spec.jobID).log")
        defer { spool.remove() }
        let control = ProcessGroupControl(jobID: spec.jobID, attempt: spec.attempt, grace: .seconds(1), useCgroup: false)
        let result = await runner.run(spec, spool: spool, control: control) {}
        return (result, String(decoding: try spool.read(from: 0, count: spool.length), as: UTF8.self))
    }

    /// With work trees (mounted) and without (the history copied): the step sees the same.
    @Test(arguments: [0, 2])
    func checksOutOverFileURLAndTheStepReadsTheRepository(workTrees: Int) async throws {
        let (bare, commits) = try await fixture.repository("app", commits: 2)
        func run(_ spec: JobRunner.Spec) async throws -> (JobRunner.Result, String) {
            try await Self.run(spec, root: root, mirrors: mirrors, workTrees: workTrees)
        }
        let (result, log) = try await run(
            spec(
                [
                    "cat hello.txt", "git rev-parse HEAD", "git status --porcelain | wc -l",
                    // The history is a copy: no alternates, no object file shared with the mirror.
                    "test -e .git/objects/info/alternates && echo ALTERNATES || echo no-alternates",
                    "find .git/objects -type f -links +1 | wc -l",
                ], repository: "file://\(bare)", commit: commits[1]))
        #expect(result.outcome == .succeeded, "\(result) \(log)")
        #expect(result.failure.isEmpty)
        #expect(log.contains("hello 2\n\(commits[1])\n0\nno-alternates\n0\n"), "\(log)")
        #expect(log.contains("gantry: checkout file://\(bare) at \(commits[1])"))
        #expect(log.contains("gantry: checkout: HEAD is \(commits[1])"))
        #expect(log.contains("mounted this host's work tree") == (workTrees > 0 && OverlayProbe.works), "\(log)")
        // An older commit, a branch name and a short id resolve in the mirror.
        let (older, olderLog) = try await run(spec(["cat hello.txt"], repository: bare, commit: commits[0]))
        #expect(older.outcome == .succeeded && olderLog.contains("hello 1\n"), "\(olderLog)")
        let (branch, branchLog) = try await run(spec(["git rev-parse HEAD"], repository: bare, commit: "main"))
        #expect(branch.outcome == .succeeded && branchLog.contains("\(commits[1])\n"), "\(branchLog)")
        let (short, shortLog) = try await run(spec(["git rev-parse HEAD"], repository: bare, commit: String(commits[0].prefix(10))))
        #expect(short.outcome == .succeeded && shortLog.contains("\(commits[0])\n"), "\(shortLog)")
        // One mirror for the repository, bare, with automatic gc off.
        let names = try FileManager.default.contentsOfDirectory(atPath: mirrors).filter { $0.hasSuffix(".git") }
        #expect(names.count == 1, "`file://PATH` and `PATH` are one repository: \(names)")
        let config = try String(contentsOfFile: "\(mirrors)/\(names[0])/config", encoding: .utf8)
        #expect(config.contains("bare = true") && config.contains("auto = 0"))
        #expect(AgentDirectories.mode(of: mirrors) == 0o700)
    }

    @Test func aSecondCheckoutOfTheSameCommitDoesNotTouchTheNetwork() async throws {
        let (_, commits) = try await fixture.repository("served", commits: 1)
        let daemon = try await fixture.startDaemon(serving: "served.git")
        var stopped = false
        defer { if !stopped { kill(daemon.pid, SIGKILL) } }
        let url = daemon.url("served.git")
        let (first, firstLog) = try await run(spec(["cat hello.txt"], repository: url, commit: commits[0]), allowFile: false)
        #expect(first.outcome == .succeeded, "\(first) \(firstLog)")
        #expect(firstLog.contains("fetching \(url) into this host's mirror"))
        await daemon.stop()
        stopped = true
        // The daemon is gone: only the host's mirror can serve this.
        let (second, secondLog) = try await run(spec(["cat hello.txt"], repository: url, commit: commits[0]), allowFile: false)
        #expect(second.outcome == .succeeded, "\(second) \(secondLog)")
        #expect(secondLog.contains("is already in this host's mirror, no fetch"))
        #expect(secondLog.contains("hello 1\n"))
        // A commit the mirror lacks needs the network, which is gone: checkout_failed.
        let (third, thirdLog) = try await run(
            spec(["echo never ran"], repository: url, commit: String(repeating: "e", count: 40)), allowFile: false)
        #expect(third.outcome == .failed && third.failure == JobFailureCode.checkoutFailed)
        #expect(third.message.contains("cannot fetch \(url)"), "\(third.message)")
        #expect(!thirdLog.contains("never ran"))
    }

    @Test func aMissingCommitOrAnUnreachableRepositoryFailsTheCheckoutNotTheStep() async throws {
        let (bare, _) = try await fixture.repository("small")
        let missing = String(repeating: "0", count: 39) + "1"
        let (result, log) = try await run(spec(["echo never ran"], repository: bare, commit: missing))
        #expect(result.outcome == .failed && result.failure == JobFailureCode.checkoutFailed)
        #expect(result.message == "checkout failed: commit `\(missing)` is not in \(bare)", "\(result.message)")
        #expect(log.contains("gantry: checkout failed: commit `\(missing)` is not in"))
        #expect(!log.contains("never ran"))

        let port = try GitFixture.freePort()
        let (unreachable, _) = try await run(
            spec(["echo never ran"], repository: "git://127.0.0.1:\(port)/nothing.git", commit: missing), allowFile: false)
        #expect(unreachable.failure == JobFailureCode.checkoutFailed)
        #expect(unreachable.message.contains("cannot fetch git://127.0.0.1:\(port)/nothing.git"), "\(unreachable.message)")

        // A local repository on an agent that does not allow them.
        let (refused, _) = try await run(spec(["echo never ran"], repository: bare, commit: missing), allowFile: false)
        #expect(refused.failure == JobFailureCode.checkoutFailed && refused.message.contains("--git-allow-file-urls"))
        // A remote helper that would run a command never reaches git.
        let (helper, _) = try await run(spec(["true"], repository: "ext::sh%20-c%20touch%20\(root)/pwned", commit: "main"))
        #expect(helper.failure == JobFailureCode.checkoutFailed && helper.message.contains("remote helper"))
        #expect(!FileManager.default.fileExists(atPath: root + "/pwned"))
    }

    @Test func depthPathAndOptingOut() async throws {
        let (bare, commits) = try await fixture.repository("deep", commits: 3)
        let (shallow, shallowLog) = try await run(
            spec(
                ["git -C src/app rev-list --count HEAD", "cat src/app/hello.txt", "ls -A | tr '\\n' ' '"], repository: bare,
                commit: commits[2],
                checkout: .with {
                    $0.enabled = true
                    $0.depth = 1
                    $0.path = "src/app"
                }))
        #expect(shallow.outcome == .succeeded, "\(shallow) \(shallowLog)")
        #expect(shallowLog.hasSuffix("1\nhello 3\nsrc "), "\(shallowLog)")
        let (off, offLog) = try await run(
            spec(["ls -A | wc -l"], repository: bare, commit: commits[2], checkout: .with { $0.enabled = false }))
        #expect(off.outcome == .succeeded && offLog.hasSuffix("0\n") && !offLog.contains("gantry: checkout"), "\(offLog)")
        let (absent, absentLog) = try await run(spec(["ls -A | wc -l"], repository: bare, commit: commits[2], checkout: nil))
        #expect(absent.outcome == .succeeded && absentLog.hasSuffix("0\n"), "\(absentLog)")
    }

    /// A superproject `name.git` whose only submodule, at `lib`, is `url` at `commit`
    /// (written straight into the index: nothing is fetched while making it). Returns the
    /// bare path and the superproject's commit.
    func superproject(_ name: String, submodule url: String, at commit: String) async throws -> (bare: String, commit: String) {
        let work = fixture.root + "/\(name)-work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try await fixture.sh(
            "git -c init.defaultBranch=main init -q . && echo main > main.txt && "
                + "git config -f .gitmodules submodule.lib.path lib && git config -f .gitmodules submodule.lib.url '\(url)' && "
                + "git add main.txt .gitmodules && git update-index --add --cacheinfo 160000,\(commit),lib && git commit -q -m main",
            in: work)
        let head = try await fixture.sh("git rev-parse HEAD", in: work)
        try await fixture.sh("git clone -q --bare '\(work)' '\(fixture.root)/\(name).git'")
        return ("\(fixture.root)/\(name).git", head)
    }

    @Test func submodulesAreCheckedOutFromTheirOwnURLs() async throws {
        let (_, libraryCommits) = try await fixture.repository("library")
        let daemon = try await fixture.startDaemon(serving: "library.git")
        defer { kill(daemon.pid, SIGKILL) }
        let (main, commit) = try await superproject("main", submodule: daemon.url("library.git"), at: libraryCommits[0])
        let checkout = Gantry_V1_CheckoutSpec.with {
            $0.enabled = true
            $0.submodules = true
        }
        let (result, log) = try await run(spec(["cat main.txt lib/hello.txt"], repository: main, commit: commit, checkout: checkout))
        #expect(result.outcome == .succeeded, "\(result) \(log)")
        #expect(log.contains("main\nhello 1\n"), "\(log)")
        // Without the option the submodule stays empty.
        let (plain, plainLog) = try await run(spec(["ls -A lib | wc -l"], repository: main, commit: commit))
        #expect(plain.outcome == .succeeded && plainLog.hasSuffix("0\n"), "\(plainLog)")
        // The submodules' empty HOME is gone with the checkout.
        let left = try FileManager.default.contentsOfDirectory(atPath: root + "/work")
        #expect(!left.contains { $0.contains(".home-") }, "\(left)")
    }

    /// A `.gitmodules` naming a local repository (here another pipeline's mirror on this
    /// host) fails the checkout, even on an agent that accepts local repositories for the
    /// pipeline itself: the mirror is neither read nor hard-linked into the work dir.
    @Test func aSubmoduleNeverReadsALocalRepository() async throws {
        let (victim, victimCommits) = try await fixture.repository("private")
        let (first, _) = try await run(spec(["true"], repository: victim, commit: victimCommits[0]))
        #expect(first.outcome == .succeeded)
        let mirror = mirrors + "/" + (try RepositoryURL(parsing: victim, allowFile: true).mirrorName)
        let before = try Self.snapshot(of: mirror)
        #expect(!before.isEmpty)
        let checkout = Gantry_V1_CheckoutSpec.with {
            $0.enabled = true
            $0.submodules = true
        }
        for (index, url) in [mirror, "file://\(mirror)", victim].enumerated() {
            let (hostile, commit) = try await superproject("hostile-\(index)", submodule: url, at: victimCommits[0])
            let (result, log) = try await run(
                spec(["cat lib/hello.txt", "echo never ran"], repository: hostile, commit: commit, checkout: checkout), allowFile: true)
            #expect(result.outcome == .failed && result.failure == JobFailureCode.checkoutFailed, "\(url): \(result) \(log)")
            #expect(result.message.contains("could not update the submodules"), "\(result.message)")
            #expect(!log.contains("never ran") && !log.contains("hello 1"), "\(log)")
        }
        #expect(try Self.snapshot(of: mirror) == before)
    }

    /// A credential in a URL reaches neither the job's reason nor its log, wherever git
    /// prints it: the repository's own (which git prints without its scheme when it cannot
    /// look the host up), or one a `.gitmodules` names.
    @Test func credentialsInURLsLeaveNeitherTheMessageNorTheLog() async throws {
        let port = try GitFixture.freePort()
        let missing = String(repeating: "0", count: 39) + "3"
        for url in ["git://user:secret@127.0.0.1:\(port)/x.git", "https://user:secret@127.0.0.1:\(port)/x.git"] {
            let (result, log) = try await run(spec(["echo never ran"], repository: url, commit: missing), allowFile: false)
            #expect(result.failure == JobFailureCode.checkoutFailed, "\(result)")
            #expect(result.message.contains("cannot fetch \(url.replacing("user:secret@", with: "***@"))"), "\(result.message)")
            #expect(!result.message.contains("secret"), "\(result.message)")
            #expect(!log.contains("secret") && log.contains("gantry: checkout failed"), "\(log)")
        }

        let (_, libraryCommits) = try await fixture.repository("private-library")
        let submoduleURL = "https://user:secret@127.0.0.1:\(port)/lib.git"
        let (main, commit) = try await superproject("with-token", submodule: submoduleURL, at: libraryCommits[0])
        let (result, log) = try await run(
            spec(
                ["echo never ran"], repository: main, commit: commit,
                checkout: .with {
                    $0.enabled = true
                    $0.submodules = true
                }))
        #expect(result.failure == JobFailureCode.checkoutFailed, "\(result)")
        #expect(!result.message.contains("secret") && !log.contains("secret"), "\(result.message) \(log)")
        // git's own lines are in the log, the URL in them redacted.
        #expect(log.contains("gantry: git: fatal: clone of 'https://***@127.0.0.1:\(port)/lib.git'"), "\(log)")
    }

    /// Every file of `directory` with its inode, link count, owner, size and mtime.
    static func snapshot(of directory: String) throws -> [String: [Int]] {
        var files: [String: [Int]] = [:]
        for path in try FileManager.default.subpathsOfDirectory(atPath: directory) {
            var info = stat()
            guard lstat("\(directory)/\(path)", &info) == 0 else { continue }
            files[path] = [
                Int(info.st_ino), Int(info.st_nlink), Int(info.st_uid), Int(info.st_size), info.st_mtim.tv_sec,
                info.st_mtim.tv_nsec,
            ]
        }
        return files
    }

    @Test func theStepsTimeoutStopsACheckoutWaitingForTheMirror() async throws {
        let (bare, commits) = try await fixture.repository("locked")
        let url = try RepositoryURL(parsing: bare, allowFile: true)
        try FileManager.default.createDirectory(atPath: mirrors, withIntermediateDirectories: true)
        // Another slot holds the mirror's lock for the whole test.
        let descriptor = open("\(mirrors)/\(url.mirrorName).lock", O_RDWR | O_CREAT, 0o600)
        #expect(descriptor >= 0 && flock(descriptor, LOCK_EX) == 0)
        defer { close(descriptor) }
        let started = ContinuousClock.now
        let (timedOut, _) = try await run(spec(["echo never ran"], repository: bare, commit: commits[0], timeout: .milliseconds(400)))
        #expect(timedOut.outcome == .timedOut && timedOut.failure.isEmpty, "\(timedOut)")
        #expect(ContinuousClock.now - started < .seconds(20))
        // Without a step timeout, the lock's own bound applies and the checkout fails.
        let (waited, _) = try await run(spec(["echo never ran"], repository: bare, commit: commits[0]), lockTimeout: .milliseconds(300))
        #expect(waited.failure == JobFailureCode.checkoutFailed && waited.message.contains("gave up waiting"), "\(waited)")
    }

    /// A slot waiting behind another slot's long fetch outlasts it: the wait is bounded
    /// longer than the holder's git work, and the checkout's own bound starts only once the
    /// slot holds the lock.
    @Test func aSlotWaitsOutAnotherSlotsFetchLongerThanTheCheckoutBound() async throws {
        let defaults = GitMirrors(directory: mirrors)
        #expect(defaults.lockTimeout > defaults.checkoutTimeout)
        let short = GitMirrors(directory: mirrors, checkoutTimeout: .seconds(10))
        #expect(short.lockTimeout > short.checkoutTimeout)

        let (bare, commits) = try await fixture.repository("long-fetch")
        let (first, _) = try await run(spec(["true"], repository: bare, commit: commits[0]))
        #expect(first.outcome == .succeeded)
        let url = try RepositoryURL(parsing: bare, allowFile: true)
        // Another slot holds the mirror for 3 s, longer than this checkout's 2 s bound.
        let descriptor = open("\(mirrors)/\(url.mirrorName).lock", O_RDWR | O_CREAT, 0o600)
        #expect(descriptor >= 0 && flock(descriptor, LOCK_EX) == 0)
        let holder = Task {
            try? await Task.sleep(for: .seconds(3))
            close(descriptor)
        }
        let started = ContinuousClock.now
        let (waited, log) = try await Self.run(
            spec(["cat hello.txt"], repository: bare, commit: commits[0]), root: root, mirrors: mirrors,
            checkoutTimeout: .seconds(2))
        await holder.value
        #expect(waited.outcome == .succeeded, "\(waited) \(log)")
        #expect(log.contains("hello 1\n"), "\(log)")
        #expect(ContinuousClock.now - started >= .seconds(3))
    }

    @Test func lockFilesOfAGitKilledMidFetchDoNotBreakTheMirror() async throws {
        let (bare, commits) = try await fixture.repository("interrupted", commits: 2)
        let (first, _) = try await run(spec(["true"], repository: bare, commit: commits[0]))
        #expect(first.outcome == .succeeded)
        let mirror = mirrors + "/" + (try RepositoryURL(parsing: bare, allowFile: true).mirrorName)
        // What a fetch killed by a timeout leaves behind.
        for stale in ["packed-refs.lock", "shallow.lock", "refs/heads/main.lock"] {
            #expect(FileManager.default.createFile(atPath: "\(mirror)/\(stale)", contents: Data()))
        }
        // A push moves `main`, so the next fetch must update its ref (and take its lock).
        let work = fixture.root + "/interrupted-work"
        try await fixture.sh("echo 'hello 3' > hello.txt && git commit -q -am three && git push -q '\(bare)' main", in: work)
        let newest = try await fixture.sh("git rev-parse HEAD", in: work)
        #expect(newest != commits[1])
        let (second, log) = try await run(spec(["git rev-parse HEAD"], repository: bare, commit: "main"))
        #expect(second.outcome == .succeeded && log.contains("\(newest)\n"), "\(second) \(log)")
        #expect(!FileManager.default.fileExists(atPath: "\(mirror)/refs/heads/main.lock"))
    }

    @Test func concurrentSlotsShareOneMirror() async throws {
        let (bare, commits) = try await fixture.repository("shared", commits: 2)
        let (root, mirrors) = (self.root, self.mirrors)
        let (first, second) = (
            spec(["cat hello.txt"], repository: bare, commit: commits[1]), spec(["cat hello.txt"], repository: bare, commit: commits[0])
        )
        async let one = Self.run(first, root: root, mirrors: mirrors)
        async let two = Self.run(second, root: root, mirrors: mirrors)
        let results = try await [one, two]
        #expect(results.allSatisfy { $0.0.outcome == .succeeded }, "\(results)")
        #expect(results[0].1.contains("hello 2") && results[1].1.contains("hello 1"))
        let names = try FileManager.default.contentsOfDirectory(atPath: mirrors).filter { $0.hasSuffix(".git") }
        #expect(names.count == 1)
    }

    /// A mirrors directory someone else can write (a shared sticky one, or another user's)
    /// is refused, not used: whoever writes it decides what every pipeline checks out.
    @Test func aMirrorDirectoryOthersCanWriteIsRefused() async throws {
        let (bare, commits) = try await fixture.repository("loose")
        #expect(mkdir(mirrors, 0o700) == 0 && chmod(mirrors, 0o1777) == 0)
        let (result, log) = try await run(spec(["echo never ran"], repository: bare, commit: commits[0]))
        #expect(result.outcome == .failed && result.failure == JobFailureCode.checkoutFailed, "\(result)")
        #expect(result.message.contains("the git mirror directory cannot be used"), "\(result.message)")
        #expect(result.message.contains("writable by no one else"), "\(result.message)")
        #expect(!log.contains("never ran"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: mirrors).isEmpty)
        #expect(throws: IsolationError.self) { try AgentDirectories.ensureOwned(mirrors) }
        // Once it is the agent's own, it is used.
        #expect(chmod(mirrors, 0o755) == 0)
        let (fixed, fixedLog) = try await run(spec(["cat hello.txt"], repository: bare, commit: commits[0]))
        #expect(fixed.outcome == .succeeded && fixedLog.contains("hello 1\n"), "\(fixed) \(fixedLog)")
        #expect(AgentDirectories.mode(of: mirrors) == 0o700)
    }

    @Test(.enabled(if: isRoot && nobody != nil, "needs root and the user nobody"))
    func aMirrorDirectoryOfAnotherUserIsRefused() async throws {
        let nobody = try #require(Self.nobody)
        let (bare, commits) = try await fixture.repository("foreign")
        #expect(mkdir(mirrors, 0o700) == 0 && chown(mirrors, nobody.uid, nobody.gid) == 0)
        let (result, _) = try await run(spec(["echo never ran"], repository: bare, commit: commits[0]))
        #expect(result.failure == JobFailureCode.checkoutFailed, "\(result)")
        #expect(result.message.contains("owned by uid \(nobody.uid)"), "\(result.message)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: mirrors).isEmpty)
    }

    static var isRoot: Bool { geteuid() == 0 }
    static var nobody: StepUser? { try? StepUser.resolve("nobody") }

    /// The checkout belongs to the step user, who can work in it but can neither read nor
    /// write the host's mirrors, and no file of a mirror became the step user's.
    @Test(.enabled(if: isRoot && nobody != nil, "needs root and the user nobody"))
    func theStepUserOwnsTheCheckoutButCannotReachTheMirror() async throws {
        let nobody = try #require(Self.nobody)
        chmod(root, 0o755)
        let (bare, commits) = try await fixture.repository("isolated", commits: 2)
        let name = try RepositoryURL(parsing: bare, allowFile: true).mirrorName
        let (result, log) = try await Self.run(
            spec(
                [
                    "stat -c 'owner=%u' . .git/HEAD hello.txt", "git status --porcelain | wc -l",
                    "echo change >> hello.txt && git diff --stat | tail -1",
                    "ls \(mirrors) >/dev/null 2>&1 && echo LISTED-MIRRORS || echo mirrors-denied",
                    "cat \(mirrors)/\(name)/HEAD >/dev/null 2>&1 && echo READ-MIRROR || echo mirror-denied",
                    "echo x >> \(mirrors)/\(name)/HEAD 2>/dev/null && echo WROTE-MIRROR || echo mirror-write-denied",
                ], repository: bare, commit: commits[1]),
            root: root, mirrors: mirrors, stepUser: nobody)
        #expect(result.outcome == .succeeded, "\(result) \(log)")
        #expect(log.contains("owner=\(nobody.uid)\nowner=\(nobody.uid)\nowner=\(nobody.uid)\n0\n"), "\(log)")
        #expect(log.contains("1 file changed"), "\(log)")
        for line in ["mirrors-denied", "mirror-denied", "mirror-write-denied"] {
            #expect(log.contains(line), "\(line) missing from: \(log)")
        }
        // Nothing in the mirror is the step user's (a hard link handed over by `chown`
        // would be).
        let files = try FileManager.default.subpathsOfDirectory(atPath: "\(mirrors)/\(name)")
        #expect(!files.isEmpty)
        for file in files {
            let attributes = try FileManager.default.attributesOfItem(atPath: "\(mirrors)/\(name)/\(file)")
            #expect((attributes[.ownerAccountID] as? NSNumber)?.uint32Value != nobody.uid, "\(file)")
        }
    }

    /// The work dir is the agent's (0700) until the checkout is done: a checkout that
    /// fails leaves it so, and one that works hands it to the step user only afterwards.
    @Test(.enabled(if: isRoot && nobody != nil, "needs root and the user nobody"))
    func theWorkDirIsTheAgentsUntilTheCheckoutIsDone() async throws {
        let nobody = try #require(Self.nobody)
        chmod(root, 0o755)
        let (bare, commits) = try await fixture.repository("handover")
        let missing = String(repeating: "0", count: 39) + "2"
        let failing = spec(["echo never ran"], repository: bare, commit: missing)
        let (failed, _) = try await Self.run(failing, root: root, mirrors: mirrors, stepUser: nobody, keepWorkDirs: true)
        #expect(failed.failure == JobFailureCode.checkoutFailed, "\(failed)")
        var info = stat()
        #expect(lstat("\(root)/work/\(failing.jobID)-1", &info) == 0)
        #expect(info.st_uid == geteuid() && info.st_mode & 0o7777 == 0o700, "uid \(info.st_uid) mode \(info.st_mode)")

        let working = spec(["stat -c 'owner=%u mode=%a' ."], repository: bare, commit: commits[0])
        let (worked, log) = try await Self.run(working, root: root, mirrors: mirrors, stepUser: nobody, keepWorkDirs: true)
        #expect(worked.outcome == .succeeded, "\(worked) \(log)")
        #expect(log.contains("owner=\(nobody.uid) mode=700\n"), "\(log)")
        // No checkout: the empty work dir is handed over all the same.
        let plain = spec(["stat -c 'owner=%u' ."], repository: bare, commit: commits[0], checkout: nil)
        let (ran, plainLog) = try await Self.run(plain, root: root, mirrors: mirrors, stepUser: nobody)
        #expect(ran.outcome == .succeeded && plainLog.contains("owner=\(nobody.uid)\n"), "\(ran) \(plainLog)")
    }
}
