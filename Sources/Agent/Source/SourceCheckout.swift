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

/// Checks one attempt's source out (docs/pipeline.md, "Checkout"):
///
/// 1. under the mirror's lock (`MirrorLock`): create the bare mirror if it is new, and
///    fetch the repository's branches and tags into it unless the commit is a full id
///    the mirror already holds (then the network is not touched at all); a commit no
///    branch or tag reaches is asked for by id;
/// 2. resolve the commit in the mirror to its full id;
/// 3. still under the lock, either claim one of the host's work trees of the repository
///    (`WorkTrees`; a new one is cloned from the mirror, an existing one fetches from it)
///    or copy the mirror's history into the work dir (or `path`): a local clone that
///    copies the mirror's pack files (`--local --no-hardlinks`), or with `depth` a
///    `git init` and a shallow fetch of that one commit over `file://`. Never hard links
///    or alternates into the mirror, so nothing in the work dir is the mirror's. Under
///    the lock because a fetch may repack the mirror (`git gc --auto`);
/// 4. after the lock, with a work tree: bring it to the commit if it is elsewhere and
///    mount it as an overlay on the work dir (`SourceCheckout+WorkTrees`); any failure
///    there copies the history instead. Without one: a detached checkout with parallel
///    workers, then `git submodule update --init --recursive` when asked (from the
///    submodules' own URLs, not mirrored, and anonymously: `GitEnvironment.anonymous`);
/// 5. verify HEAD is exactly the resolved commit.
///
/// Every git runs as the agent's user under the attempt's `ProcessGroupControl`, with
/// `GitEnvironment`, in a work dir that is still the agent's (0700): `JobRunner` hands it
/// to the step user only afterwards (`WorkDirectoryHandover`).
struct SourceCheckout {
    var mirrors: GitMirrors
    var git: String
    var jobID: String
    var attempt: UInt32
    var control: ProcessGroupControl

    /// Who the step's files belong to in a work tree (the step user, else the agent).
    var treeOwner: (uid: UInt32, gid: UInt32) = (getuid(), getgid())
    /// Whether this attempt may mount a work tree (`WorkTrees`): not when its work dir is
    /// kept after the job, which would keep the mount and the tree's lock with it.
    var mayMountTree = true

    /// What a checkout left: the commit, and the work tree mounted for it, if one was.
    struct Outcome: Sendable {
        var commit: String
        var mounted: MountedTree?
    }

    /// Checks the request out into the work dir; `note` writes a line to the step's log.
    func perform(
        _ request: CheckoutRequest, workDirectory: String, note: (String) async -> Void
    ) async throws(CheckoutFailure) -> Outcome {
        let url = request.repository
        let mirror = mirrors.mirrorPath(for: url)
        do {
            try AgentDirectories.ensureOwned(mirrors.directory)
        } catch {
            throw CheckoutFailure("the git mirror directory cannot be used: \(error)")
        }
        let lock = try await lockMirror(mirror, of: url)
        // The git work is bounded from here, also for a step without `timeout:`: past the
        // bound git is stopped like a command and the job fails as a checkout. The wait
        // above has its own bound, longer than this one, so a slot outlasts the holder.
        let control = self.control
        let bound = mirrors.checkoutTimeout
        let limit = Task {
            try? await Task.sleep(for: bound)
            if !Task.isCancelled { control.stop(.failed(Self.limitReason(bound))) }
        }
        defer { limit.cancel() }
        let commit: String
        var claim: WorkTrees.Claim?
        let target = try Self.target(of: request, in: workDirectory)
        do {
            defer { lock.release() }
            commit = try await updateMirror(mirror, request: request, note: note)
            if let trees = workTrees(for: request) {
                claim = await claimTree(of: trees, commit: commit, mirror: mirror, note: note)
            }
            if claim == nil { try await copyHistory(from: mirror, commit: commit, request: request, into: target) }
        }
        if let claim {
            if let mounted = await mountTree(claim, commit: commit, request: request, at: target, workDirectory: workDirectory, note: note) {
                return Outcome(commit: commit, mounted: mounted)
            }
            let again = try await lockMirror(mirror, of: url)
            defer { again.release() }
            try await copyHistory(from: mirror, commit: commit, request: request, into: target)
        }
        try await checkOut(commit, request: request, in: target, workDirectory: workDirectory, note: note)
        return Outcome(commit: commit, mounted: nil)
    }

    /// The mirror's lock, waited for within `GitMirrors.lockTimeout` or until the attempt
    /// is stopped.
    private func lockMirror(_ mirror: String, of url: RepositoryURL) async throws(CheckoutFailure) -> MirrorLock {
        let control = self.control
        do {
            return try await MirrorLock.acquire(
                mirror + ".lock", timeout: mirrors.lockTimeout, shouldStop: { control.stopReason != nil })
        } catch {
            switch error {
            case .timedOut:
                throw CheckoutFailure(
                    "another slot held the mirror of \(url.redacted) for over \(mirrors.lockTimeout): gave up waiting")
            case .stopped:
                throw CheckoutFailure("stopped while waiting for the mirror of \(url.redacted)")
            case .open(let why):
                throw CheckoutFailure("cannot open the lock of the mirror of \(url.redacted): \(why)")
            }
        }
    }

    /// Why the checkout was stopped when its git work took longer than `bound`.
    static func limitReason(_ bound: Duration) -> String {
        "checkout took longer than \(bound)"
    }

    /// Step 1 and 2, under the lock: the commit's full id in the mirror.
    private func updateMirror(
        _ mirror: String, request: CheckoutRequest, note: (String) async -> Void
    ) async throws(CheckoutFailure) -> String {
        let url = request.repository
        let remote = command(allowFile: url.transport == .file && mirrors.allowFileURLs)
        if !FileManager.default.fileExists(atPath: mirror + "/HEAD") {
            try? FileManager.default.removeItem(atPath: mirror)
            try await run(remote, ["init", "--bare", "--quiet", "--template=", "--", mirror], in: mirrors.directory, "create the mirror")
            for (key, value) in [("gc.auto", "0"), ("maintenance.auto", "false"), ("uploadpack.allowAnySHA1InWant", "true")] {
                try await run(remote, ["config", key, value], in: mirror, "configure the mirror")
            }
        }
        Self.removeStaleGitLocks(in: mirror)
        if CheckoutRequest.isFullCommitID(request.commit), let commit = await resolve(request.commit, in: mirror) {
            await note("gantry: checkout: \(commit) is already in this host's mirror, no fetch\n")
            return commit
        }
        await note("gantry: checkout: fetching \(url.redacted) into this host's mirror\n")
        let fetch = try await outcome(
            remote,
            ["fetch", "--quiet", "--prune", "--no-tags", "--", url.text, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            in: mirror)
        guard fetch.succeeded else {
            let status = fetch.status.map { "exit status \($0)" } ?? "a signal"
            throw CheckoutFailure(
                "cannot fetch \(url.redacted): \(Self.lastLine(of: fetch.output, or: "git fetch ended with \(status)"))",
                output: Self.lastLines(of: fetch.output))
        }
        await collectGarbage(in: mirror, with: remote)
        if let commit = await resolve(request.commit, in: mirror) { return commit }
        if CheckoutRequest.isFullCommitID(request.commit) {
            // Not on a branch or tag (a pull request's head, a deleted branch): ask for the
            // id itself, which servers that allow it (GitHub, GitLab) answer. Kept under
            // its own ref so the mirror holds on to it.
            _ = try await outcome(
                remote, ["fetch", "--quiet", "--no-tags", "--", url.text, "+\(request.commit):refs/gantry/\(request.commit)"],
                in: mirror)
            if let commit = await resolve(request.commit, in: mirror) { return commit }
        }
        throw CheckoutFailure("commit `\(request.commit.logSafe(maximum: 80))` is not in \(url.redacted)")
    }

    /// Where the checkout goes: the work dir, or `path` inside it (created here).
    private static func target(of request: CheckoutRequest, in workDirectory: String) throws(CheckoutFailure) -> String {
        guard !request.path.isEmpty else { return workDirectory }
        let target = "\(workDirectory)/\(request.path)"
        do {
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        } catch {
            throw CheckoutFailure("cannot create the checkout path \(request.path): \(error)")
        }
        return target
    }

    /// Step 3, under the mirror's lock: the work dir's own copy of the history.
    ///
    /// The whole history is a local clone that copies the mirror's pack files as they are
    /// (about the speed of `cp`); a fetch over `file://` would have `pack-objects` and
    /// `index-pack` rebuild and re-hash every object, which took 1.7 s of a 1.9 s copy of
    /// a 100 MiB history. A shallow copy has to be cut from the history, so `depth` keeps
    /// the fetch of that one commit.
    private func copyHistory(
        from mirror: String, commit: String, request: CheckoutRequest, into target: String
    ) async throws(CheckoutFailure) {
        let local = command(allowFile: true)
        if request.depth > 0 {
            try await run(local, ["init", "--quiet", "--template=", "--", target], in: target, "create the checkout")
            let fetch = ["fetch", "--quiet", "--no-tags", "--depth=\(request.depth)", "--", "file://\(mirror)", commit]
            try await run(local, fetch, in: target, "copy the commit from the mirror")
        } else {
            let clone = ["clone", "--quiet", "--local", "--no-hardlinks", "--no-checkout", "--template=", "--", mirror, target]
            try await run(local, clone, in: target, "copy the history from the mirror")
        }
    }

    /// Steps 4 to 6, after the lock: the tree, origin, submodules, and the check of HEAD.
    private func checkOut(
        _ commit: String, request: CheckoutRequest, in target: String, workDirectory: String,
        note: (String) async -> Void
    ) async throws(CheckoutFailure) {
        let local = command(allowFile: true)
        // Parallel workers (one per CPU) write the tree: most of a large checkout is
        // creating its files, and that overlaps well across cores.
        try await run(
            local, ["-c", "checkout.workers=0", "checkout", "--quiet", "--force", "--detach", commit], in: target, "check out")
        try await run(local, ["config", "remote.origin.url", request.repository.text], in: target, "configure origin")
        try await run(local, ["config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"], in: target, "configure origin")
        if request.submodules {
            await note("gantry: checkout: updating submodules\n")
            var arguments = ["submodule", "update", "--init", "--recursive"]
            if request.depth > 0 { arguments.append("--depth=\(request.depth)") }
            let home = try Self.emptyHome(beside: workDirectory)
            defer { try? FileManager.default.removeItem(atPath: home) }
            let anonymous = GitCommand(
                git: git,
                environment: .anonymous(jobID: jobID, attempt: attempt, home: home),
                control: control)
            try await run(anonymous, arguments, in: target, "update the submodules")
        }
        try await verifyHead(commit, in: target, safe: false)
        await note("gantry: checkout: HEAD is \(commit)\(request.path.isEmpty ? "" : " in \(request.path)")\n")
    }

    /// Removes the lock files git leaves when it is killed mid-fetch (a step's timeout, a
    /// cancel, a slot that crashed): every later fetch would fail on them ("Unable to create
    /// '….lock': File exists"). They are stale by construction while this slot holds the
    /// mirror's flock: only a holder writes the mirror. Other slots may be reading it at the
    /// same time (a clone copies its commit out after releasing the lock), but reading
    /// (`upload-pack`, `rev-parse`) takes no lock file. Only the top level and `refs/` are
    /// looked at, never the objects.
    static func removeStaleGitLocks(in mirror: String) {
        let files = FileManager.default
        for name in (try? files.contentsOfDirectory(atPath: mirror)) ?? [] where name.hasSuffix(".lock") {
            try? files.removeItem(atPath: "\(mirror)/\(name)")
        }
        for path in (try? files.subpathsOfDirectory(atPath: "\(mirror)/refs")) ?? [] where path.hasSuffix(".lock") {
            try? files.removeItem(atPath: "\(mirror)/refs/\(path)")
        }
    }

    /// A new empty directory, 0700, for the submodules' `HOME` (`GitEnvironment.anonymous`):
    /// next to the work dir in the agent's work root, under a random name (`mkdtemp`), so
    /// no step can reach it or predict it. Removed after the submodules.
    static func emptyHome(beside workDirectory: String) throws(CheckoutFailure) -> String {
        var template = Array("\(workDirectory).home-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress, mkdtemp(base) != nil else { return nil }
            return String(cString: base)
        }
        guard let made else {
            throw CheckoutFailure("cannot create an empty home for the submodules: \(String(cString: strerror(errno)))")
        }
        return made
    }

    /// After a fetch, under the lock: `git gc --auto`, which does nothing until the mirror
    /// holds more than 6,700 loose objects or 50 packs, then repacks it. Without it every
    /// push a mirror fetches leaves a pack or loose objects behind, and each checkout's
    /// copy of the mirror gets slower. In the foreground (`gc.autoDetach=false`), so it
    /// never outlives the lock; a failed gc leaves a mirror that still works, so it does
    /// not fail the checkout.
    private func collectGarbage(in mirror: String, with remote: GitCommand) async {
        _ = try? await remote.run(
            ["-c", "gc.auto=6700", "-c", "gc.autoPackLimit=50", "-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"],
            in: mirror)
    }

    /// The commit's full id if the mirror has it as a commit.
    func resolve(_ name: String, in mirror: String) async -> String? {
        let remote = command(allowFile: false)
        guard
            let result = try? await remote.run(
                ["rev-parse", "--verify", "--quiet", "--end-of-options", "\(name)^{commit}"], in: mirror),
            result.succeeded
        else { return nil }
        let id = String(result.output.filter { !$0.isWhitespace })
        return CheckoutRequest.isFullCommitID(id) ? id : nil
    }

    func command(allowFile: Bool) -> GitCommand {
        GitCommand(git: git, environment: GitEnvironment(jobID: jobID, attempt: attempt, allowFile: allowFile), control: control)
    }

    func outcome(
        _ command: GitCommand, _ arguments: [String], in directory: String
    ) async throws(CheckoutFailure) -> GitCommand.Outcome {
        do {
            return try await command.run(arguments, in: directory)
        } catch {
            throw CheckoutFailure("could not run git: \(error)")
        }
    }

    func run(
        _ command: GitCommand, _ arguments: [String], in directory: String, _ what: String
    ) async throws(CheckoutFailure) {
        let result = try await outcome(command, arguments, in: directory)
        guard result.succeeded else {
            let status = result.status.map { "exit status \($0)" } ?? "killed by a signal"
            throw CheckoutFailure(
                "could not \(what): \(Self.lastLine(of: result.output, or: "git \(arguments[0]) ended with \(status)"))",
                output: Self.lastLines(of: result.output))
        }
    }

    /// The last non-empty line of git's output (its `fatal:` line), bounded, or `fallback`.
    static func lastLine(of output: String, or fallback: String) -> String {
        lastLines(of: output).last ?? fallback
    }

    /// The last non-empty lines of git's output, bounded and escaped, for the log: the
    /// last line alone often only says that something failed (`Failed to clone 'lib' a
    /// second time, aborting`), the lines before it say what.
    static func lastLines(of output: String) -> [String] {
        output.split(whereSeparator: \.isNewline).filter { !$0.allSatisfy(\.isWhitespace) }
            .suffix(CheckoutFailure.maximumOutputLines).map { String($0).logSafe(maximum: 300) }
    }
}
