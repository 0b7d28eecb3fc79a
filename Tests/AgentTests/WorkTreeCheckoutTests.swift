import Foundation
@testable import GantryAgent
import GantryProtocol
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Checkouts from the host's work trees (`WorkTrees`, `OverlayMount`) with real
/// repositories and real overlay mounts, through `JobRunner.run` as a lease runs.
@Suite("Checkout: work trees mounted as overlays", .timeLimit(.minutes(3)), .enabled(if: OverlayProbe.works, "needs overlay mounts (root)"))
final class WorkTreeCheckoutTests {
    let root = NSTemporaryDirectory() + "gantry-worktree-\(UUID().uuidString)"
    var fixture: GitFixture { GitFixture(root: root + "/repos") }
    var mirrors: String { root + "/mirrors" }
    var work: String { root + "/work" }

    init() throws {
        try FileManager.default.createDirectory(atPath: root + "/repos", withIntermediateDirectories: true)
    }

    deinit {
        OverlayMount.detachAll(atOrUnder: root)
        try? FileManager.default.removeItem(atPath: root)
    }

    func spec(_ commands: [String], repository: String, commit: String) -> JobRunner.Spec {
        JobRunner.Spec(lease: .with {
            $0.jobID = "job-\(UUID().uuidString)"
            $0.attempt = 1
            $0.pipelineID = "p"
            $0.stepKey = "build"
            $0.commands = commands
            $0.repository = repository
            $0.commit = commit
            $0.checkout = .with { $0.enabled = true }
        })
    }

    func run(_ spec: JobRunner.Spec, workTrees: Int = 2) async throws -> (JobRunner.Result, String) {
        try await CheckoutRunnerTests.run(spec, root: root, mirrors: mirrors, workTrees: workTrees)
    }

    func treesDirectory(of repository: String) throws -> String {
        let name = try RepositoryURL(parsing: repository, allowFile: true).mirrorName
        return "\(mirrors)/\(name.dropLast(4)).trees"
    }

    /// Nothing of a finished attempt is left: no mount, no overlay layers.
    func expectNothingLeft(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(MountTable.current().mountPoints(atOrUnder: work).isEmpty, sourceLocation: sourceLocation)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: work)) ?? []
        #expect(!names.contains { $0.hasSuffix(".overlay") }, "\(names)", sourceLocation: sourceLocation)
    }

    /// A tree is brought to a commit once, then mounted as it is; what a step writes goes
    /// to its own layer, so the next attempt finds the commit exactly, and a newer commit
    /// updates a tree in place.
    @Test func aTreeIsBroughtToTheCommitOnceThenMountedAndStaysTheCommit() async throws {
        let (bare, commits) = try await fixture.repository("app", commits: 2)
        let (first, firstLog) = try await run(
            spec(
                [
                    "cat hello.txt", "echo dirty >> hello.txt", "touch untracked", "mkdir -p .build && touch .build/out",
                    "git status --porcelain | wc -l",
                ], repository: bare, commit: commits[0]))
        #expect(first.outcome == .succeeded, "\(first) \(firstLog)")
        #expect(firstLog.contains("which was brought to the commit"), "\(firstLog)")
        #expect(firstLog.contains("hello 1\n3\n"), "\(firstLog)")
        expectNothingLeft()

        let (second, secondLog) = try await run(
            spec(
                ["git status --porcelain | wc -l", "cat hello.txt", "ls -A", "git rev-parse HEAD"], repository: bare,
                commit: commits[0]))
        #expect(second.outcome == .succeeded, "\(second) \(secondLog)")
        #expect(secondLog.contains("which was at the commit"), "\(secondLog)")
        #expect(secondLog.contains("0\nhello 1\n.git\nhello.txt\n\(commits[0])\n"), "\(secondLog)")
        expectNothingLeft()

        let (third, thirdLog) = try await run(spec(["cat hello.txt", "git status --porcelain | wc -l"], repository: bare, commit: commits[1]))
        #expect(third.outcome == .succeeded, "\(third) \(thirdLog)")
        #expect(thirdLog.contains("which was brought to the commit") && thirdLog.contains("hello 2\n0\n"), "\(thirdLog)")
        #expect(thirdLog.contains("HEAD is \(commits[1])"))
        expectNothingLeft()

        // One tree, brought forward rather than a second cloned (no attempt held it), clean,
        // at the last commit, and the agent's alone.
        let trees = try treesDirectory(of: bare)
        #expect(AgentDirectories.mode(of: trees) == 0o700)
        #expect(WorkTreeMarker.read("\(trees)/0.ready")?.commit == commits[1])
        #expect(!FileManager.default.fileExists(atPath: "\(trees)/1"))
        let status = try await fixture.sh("git -c safe.directory='*' status --porcelain --ignored", in: "\(trees)/0")
        #expect(status.isEmpty, "\(status)")
        #expect(try String(contentsOfFile: "\(trees)/0/hello.txt", encoding: .utf8) == "hello 2\n")
    }

    /// Parallel attempts of one commit share one tree; with every tree taken, a checkout
    /// of another commit copies the history instead of waiting.
    @Test func parallelAttemptsShareATreeAndABusyHostCopiesTheHistory() async throws {
        let (bare, commits) = try await fixture.repository("shared", commits: 2)
        let sync = root + "/sync"
        try FileManager.default.createDirectory(atPath: sync, withIntermediateDirectories: true)
        let (warm, warmLog) = try await run(spec(["true"], repository: bare, commit: commits[0]), workTrees: 1)
        #expect(warm.outcome == .succeeded, "\(warmLog)")

        func holding(_ name: String) -> JobRunner.Spec {
            spec(
                [
                    "cat hello.txt", "touch \(sync)/\(name)",
                    "i=0; while [ ! -e \(sync)/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
                ], repository: bare, commit: commits[0])
        }
        let (one, two) = (holding("one"), holding("two"))
        let (root, mirrors) = (self.root, self.mirrors)
        let runOne = Task { try await CheckoutRunnerTests.run(one, root: root, mirrors: mirrors, workTrees: 1) }
        let runTwo = Task { try await CheckoutRunnerTests.run(two, root: root, mirrors: mirrors, workTrees: 1) }
        let deadline = ContinuousClock.now + .seconds(60)
        while !(FileManager.default.fileExists(atPath: sync + "/one") && FileManager.default.fileExists(atPath: sync + "/two")),
            ContinuousClock.now < deadline
        {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(MountTable.current().mountPoints(atOrUnder: work).count == 2)
        let (other, otherLog) = try await run(spec(["cat hello.txt"], repository: bare, commit: commits[1]), workTrees: 1)
        _ = FileManager.default.createFile(atPath: sync + "/go", contents: nil)
        let (first, firstLog) = try await runOne.value
        let (second, secondLog) = try await runTwo.value
        for (result, log) in [(first, firstLog), (second, secondLog)] {
            #expect(result.outcome == .succeeded, "\(result) \(log)")
            #expect(log.contains("mounted this host's work tree 0, which was at the commit") && log.contains("hello 1\n"), "\(log)")
        }
        #expect(other.outcome == .succeeded, "\(other) \(otherLog)")
        #expect(otherLog.contains("every work tree of this repository is in use: copying the history"), "\(otherLog)")
        #expect(otherLog.contains("hello 2\n") && !otherLog.contains("mounted"), "\(otherLog)")
        expectNothingLeft()
    }

    /// What a killed agent leaves: an overlay still mounted on a work dir goes when the
    /// next agent reclaims the work root, and one still on a tree goes before the tree
    /// is changed.
    @Test func overlaysAKilledAgentLeftAreDetached() async throws {
        let (bare, commits) = try await fixture.repository("killed", commits: 2)
        let (warm, warmLog) = try await run(spec(["true"], repository: bare, commit: commits[0]), workTrees: 1)
        #expect(warm.outcome == .succeeded, "\(warmLog)")
        let tree = try treesDirectory(of: bare) + "/0"
        // An attempt's mount as a killed agent leaves it: the work dir, its layers, its
        // attempt lock nobody holds.
        let key = "job-killed-1"
        for directory in ["\(work)/\(key)", "\(work)/\(key).overlay/upper", "\(work)/\(key).overlay/work"] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        _ = FileManager.default.createFile(atPath: "\(work)/\(key).lock", contents: nil)
        let layers = "\(work)/\(key).overlay"
        #expect(OverlayMount.mount(lower: tree, upper: layers + "/upper", work: layers + "/work", at: "\(work)/\(key)") == nil)
        #expect(FileManager.default.fileExists(atPath: "\(work)/\(key)/hello.txt"))
        // The next commit needs the only tree: the stale overlay on it is detached first.
        let (next, nextLog) = try await run(spec(["cat hello.txt"], repository: bare, commit: commits[1]), workTrees: 1)
        #expect(next.outcome == .succeeded && nextLog.contains("which was brought to the commit"), "\(nextLog)")
        #expect(MountTable.current().overlays(withLowerDirectory: tree).isEmpty)

        // The work dir's own mount goes with the reclaim.
        let scratch = root + "/scratch"
        for directory in ["lower", "upper", "work"] {
            try FileManager.default.createDirectory(atPath: "\(scratch)/\(directory)", withIntermediateDirectories: true)
        }
        _ = FileManager.default.createFile(atPath: "\(scratch)/lower/kept", contents: Data("kept".utf8))
        #expect(
            OverlayMount.mount(lower: scratch + "/lower", upper: layers + "/upper", work: layers + "/work", at: "\(work)/\(key)") == nil)
        #expect(MountTable.current().mountPoints(atOrUnder: work) == ["\(work)/\(key)"])
        let reclaimed = LeftoverReclaim.reclaimWorkRoot(work, held: [])
        #expect(reclaimed.entries >= 3, "\(reclaimed)")
        #expect(MountTable.current().mountPoints(atOrUnder: work).isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: work)) ?? []).isEmpty)
        // Through the mount, removing would only have hidden the lower layer's files.
        #expect(FileManager.default.fileExists(atPath: "\(scratch)/lower/kept"))
    }

    /// With a step user, the tree is the step user's and the step can change its files,
    /// but it cannot reach the tree itself, and what it changed is gone for the next
    /// attempt.
    @Test(.enabled(if: CheckoutRunnerTests.isRoot && CheckoutRunnerTests.nobody != nil, "needs the user nobody"))
    func aStepUserWritesOnlyItsOwnLayer() async throws {
        let nobody = try #require(CheckoutRunnerTests.nobody)
        chmod(root, 0o755)
        let (bare, commits) = try await fixture.repository("owned", commits: 1)
        let trees = try treesDirectory(of: bare)
        let (first, firstLog) = try await CheckoutRunnerTests.run(
            spec(
                [
                    "stat -c 'owner=%u' . .git hello.txt", "echo changed > hello.txt && cat hello.txt",
                    "git add hello.txt && git status --porcelain",
                    "ls \(trees) >/dev/null 2>&1 && echo LISTED-TREES || echo trees-denied",
                    "cat \(trees)/0/hello.txt >/dev/null 2>&1 && echo READ-TREE || echo tree-denied",
                ], repository: bare, commit: commits[0]),
            root: root, mirrors: mirrors, stepUser: nobody)
        #expect(first.outcome == .succeeded, "\(first) \(firstLog)")
        #expect(firstLog.contains("mounted this host's work tree"), "\(firstLog)")
        #expect(firstLog.contains("owner=\(nobody.uid)\nowner=\(nobody.uid)\nowner=\(nobody.uid)\nchanged\nM  hello.txt\n"), "\(firstLog)")
        #expect(firstLog.contains("trees-denied\ntree-denied\n"), "\(firstLog)")
        #expect(try String(contentsOfFile: "\(trees)/0/hello.txt", encoding: .utf8) == "hello 1\n")

        let (second, secondLog) = try await CheckoutRunnerTests.run(
            spec(["cat hello.txt", "git status --porcelain | wc -l"], repository: bare, commit: commits[0]),
            root: root, mirrors: mirrors, stepUser: nobody)
        #expect(second.outcome == .succeeded, "\(second) \(secondLog)")
        #expect(secondLog.contains("which was at the commit") && secondLog.contains("hello 1\n0\n"), "\(secondLog)")
        expectNothingLeft()
    }

    /// A commit that changes `.gitattributes` changes how unchanged files are written: a
    /// tree brought to it writes them again, as a fresh checkout would.
    @Test func aCommitChangingGitattributesRewritesTheFilesItAffects() async throws {
        let (bare, commits) = try await fixture.repository("attributes", commits: 1)
        let work = root + "/repos/attributes-work"
        try await fixture.sh(
            "printf 'echo one\\necho two\\n' > run.sh && git add run.sh && git commit -q -m script && "
                + "echo '*.sh eol=crlf' > .gitattributes && git add .gitattributes && git commit -q -m crlf && "
                + "git push -q '\(bare)' HEAD:main", in: work)
        let log = try await fixture.sh("git log --format=%H -3", in: work).split(separator: "\n").map(String.init)
        let (crlf, lf) = (log[0], log[1])
        #expect(commits.count == 1)
        let count = "tr -cd '\\r' < run.sh | wc -c"
        let (before, beforeLog) = try await run(spec([count], repository: bare, commit: lf), workTrees: 1)
        #expect(before.outcome == .succeeded && beforeLog.contains("brought to the commit") && beforeLog.contains("\n0\n"), "\(beforeLog)")
        let (after, afterLog) = try await run(spec([count, "git status --porcelain | wc -l"], repository: bare, commit: crlf), workTrees: 1)
        #expect(after.outcome == .succeeded && afterLog.contains("brought to the commit"), "\(afterLog)")
        #expect(afterLog.contains("\n2\n0\n"), "CRLF endings after the attributes changed: \(afterLog)")
        let (back, backLog) = try await run(spec([count], repository: bare, commit: lf), workTrees: 1)
        #expect(back.outcome == .succeeded && backLog.contains("\n0\n"), "\(backLog)")
    }

    /// The tree's remote branches are the mirror's, as in a copied history, and nothing
    /// of the commits it was at before is left in it.
    @Test func branchesFollowTheMirrorAndEarlierCommitsLeaveNoTrace() async throws {
        let (bare, commits) = try await fixture.repository("branches", commits: 1)
        let work = root + "/repos/branches-work"
        let (first, firstLog) = try await run(spec(["true"], repository: bare, commit: commits[0]), workTrees: 1)
        #expect(first.outcome == .succeeded, "\(firstLog)")
        try await fixture.sh(
            "echo pushed > pushed.txt && git add pushed.txt && git commit -q -m pushed && git push -q '\(bare)' HEAD:main", in: work)
        let pushed = try await fixture.sh("git rev-parse HEAD", in: work)
        let show = [
            "git rev-parse HEAD origin/main", "git reflog 2>/dev/null | wc -l",
            "test -e .git/FETCH_HEAD -o -e .git/ORIG_HEAD && echo TRACES || echo no-traces",
        ]
        let (next, nextLog) = try await run(spec(show, repository: bare, commit: pushed), workTrees: 1)
        #expect(next.outcome == .succeeded && nextLog.contains("brought to the commit"), "\(nextLog)")
        #expect(nextLog.contains("\(pushed)\n\(pushed)\n0\nno-traces\n"), "\(nextLog)")
        // Back at the older commit: still the mirror's branches.
        let (older, olderLog) = try await run(spec(show, repository: bare, commit: commits[0]), workTrees: 1)
        #expect(older.outcome == .succeeded, "\(olderLog)")
        #expect(olderLog.contains("\(commits[0])\n\(pushed)\n0\nno-traces\n"), "\(olderLog)")
    }

    /// A work tree is mounted on the work dir or a directory right in it; a deeper `path`
    /// copies the history (the step owns the directories above a deeper mount point).
    @Test func aCheckoutPathOfOneSegmentMountsAndADeeperOneCopies() async throws {
        let (bare, commits) = try await fixture.repository("paths", commits: 1)
        func checkout(_ path: String) -> JobRunner.Spec {
            var spec = spec(["cat \(path)/hello.txt", "git -C \(path) rev-parse HEAD"], repository: bare, commit: commits[0])
            spec.checkout = .with {
                $0.enabled = true
                $0.path = path
            }
            return spec
        }
        let (one, oneLog) = try await run(checkout("src"))
        #expect(one.outcome == .succeeded && oneLog.contains("mounted this host's work tree"), "\(oneLog)")
        #expect(oneLog.contains("hello 1\n\(commits[0])\n") && oneLog.contains("HEAD is \(commits[0]) in src"), "\(oneLog)")
        let (two, twoLog) = try await run(checkout("src/app"))
        #expect(two.outcome == .succeeded && !twoLog.contains("mounted"), "\(twoLog)")
        #expect(twoLog.contains("hello 1\n\(commits[0])\n"), "\(twoLog)")
        expectNothingLeft()
    }

    /// A URL with credentials: the shared tree's origin has none, the attempt's own
    /// layer has the URL it was given (as a copied history would).
    @Test func credentialsGoToTheAttemptsLayerNotTheTree() async throws {
        let (bare, commits) = try await fixture.repository("credentials", commits: 1)
        let url = "git://token@127.0.0.1:9/credentials.git"
        // The host's mirror of that URL already holds the commit, so no network is needed.
        let mirror = try GitMirrors(directory: mirrors).mirrorPath(for: RepositoryURL(parsing: url, allowFile: false))
        try FileManager.default.createDirectory(atPath: mirrors, withIntermediateDirectories: true)
        chmod(mirrors, 0o700)
        try await fixture.sh("git clone -q --bare '\(bare)' '\(mirror)'")
        let (result, log) = try await run(
            spec(["git config remote.origin.url", "git config user.name builder && git config user.name"], repository: url, commit: commits[0]))
        #expect(result.outcome == .succeeded, "\(result) \(log)")
        #expect(log.contains("mounted this host's work tree") && log.contains("\(url)\nbuilder\n"), "\(log)")
        let trees = try treesDirectory(of: url)
        let config = try String(contentsOfFile: "\(trees)/0/.git/config", encoding: .utf8)
        #expect(config.contains("url = git://127.0.0.1:9/credentials.git") && !config.contains("token"), "\(config)")
        #expect(!config.contains("builder"))
    }
}
