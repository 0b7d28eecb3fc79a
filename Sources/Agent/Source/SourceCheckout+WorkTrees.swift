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

/// The work-tree path of a checkout (`WorkTrees`, `OverlayMount`). Any failure on it
/// falls back to copying the history, so a host without overlays, or a damaged tree,
/// costs time, never a job.
extension SourceCheckout {
    /// The repository's trees, if this checkout can use one: the whole history of the
    /// commit without submodules, into the work dir or a directory right in it, trees on,
    /// overlays not refused in this process.
    ///
    /// One path segment at most, because the work dir is the step user's while the mount
    /// lives: in `a/b`, the step could swap `a` for a link and have the agent's unmount
    /// (`umount2`, as root) detach whatever the link leads to. A mount point itself cannot
    /// be renamed or removed (EBUSY), and the work dir's parent is the agent's.
    func workTrees(for request: CheckoutRequest) -> WorkTrees? {
        guard mayMountTree, request.depth == 0, !request.submodules, mirrors.workTreesPerRepository > 0,
            !request.path.contains("/"), OverlayMount.refusal == nil
        else { return nil }
        return WorkTrees(directory: mirrors.workTreesPath(for: request.repository), count: mirrors.workTreesPerRepository)
    }

    /// What a ready tree at `commit` looks like for this attempt.
    func marker(for commit: String) -> WorkTreeMarker {
        WorkTreeMarker(commit: commit, uid: treeOwner.uid, gid: treeOwner.gid)
    }

    /// Under the mirror's lock: a tree at the commit, shared; else a free tree, exclusive,
    /// that now holds the commit's objects (a new clone of the mirror, or a fetch from it).
    /// Nil (after a note) when every tree is taken or the copy failed.
    func claimTree(
        of trees: WorkTrees, commit: String, mirror: String, note: (String) async -> Void
    ) async -> WorkTrees.Claim? {
        do {
            try AgentDirectories.ensureOwned(trees.directory)
        } catch {
            await note("gantry: checkout: the work trees cannot be used (\(error)): copying the history\n")
            return nil
        }
        if let ready = trees.claimReady(marker(for: commit)) { return ready }
        guard let claim = trees.claimToUpdate(owner: treeOwner) else {
            await note("gantry: checkout: every work tree of this repository is in use: copying the history\n")
            return nil
        }
        do {
            try await fetchObjects(of: commit, into: claim.slot.tree, from: mirror, in: trees.directory)
            return claim
        } catch {
            await note("gantry: checkout: the work tree could not be updated (\(error.message)): copying the history\n")
            try? FileManager.default.removeItem(atPath: claim.slot.tree)
            return nil
        }
    }

    /// After the lock: brings an exclusive tree to the commit, then mounts the tree on
    /// `target` with layers beside the work dir. Nil (after a note) if either failed; a
    /// tree that failed to update is removed, to be cloned again.
    func mountTree(
        _ claim: WorkTrees.Claim, commit: String, request: CheckoutRequest, at target: String, workDirectory: String,
        note: (String) async -> Void
    ) async -> MountedTree? {
        let tree = claim.slot.tree
        do throws(CheckoutFailure) {
            if claim.ready {
                do {
                    try await verifyHead(commit, in: tree, safe: true)
                } catch {
                    // Not what its marker says: the next slot that can take it alone
                    // brings it to a commit again. The marker is beside the tree, not in
                    // it, so the overlays of other attempts are not touched.
                    unlink(claim.slot.marker)
                    throw error
                }
            } else {
                try await update(claim, to: commit, request: request)
            }
        } catch {
            await note("gantry: checkout: the work tree could not be brought to the commit (\(error.message)): copying the history\n")
            return nil
        }
        let layers = workDirectory + ".overlay"
        let upper = layers + "/upper"
        let work = layers + "/work"
        try? FileManager.default.removeItem(atPath: layers)
        guard mkdir(layers, 0o700) == 0, mkdir(upper, 0o700) == 0, mkdir(work, 0o700) == 0,
            lchown(upper, treeOwner.uid, treeOwner.gid) == 0
        else {
            await note("gantry: checkout: cannot create the overlay's layers: \(String(cString: strerror(errno))): copying the history\n")
            try? FileManager.default.removeItem(atPath: layers)
            return nil
        }
        if let refusal = OverlayMount.mount(lower: tree, upper: upper, work: work, at: target) {
            await note("gantry: checkout: \(refusal): copying the history\n")
            try? FileManager.default.removeItem(atPath: layers)
            return nil
        }
        if !request.repository.userinfo.isEmpty {
            // The tree's origin has no credentials (it serves every pipeline of the
            // repository); this attempt's own layer gets the URL it was given, as a copied
            // history would. The work dir is still the agent's alone here.
            let config = target + "/.git/config"
            let set = try? await command(allowFile: true).run(
                Self.safeDirectory(target) + ["config", "remote.origin.url", request.repository.text], in: target)
            guard set?.succeeded == true, lchown(config, treeOwner.uid, treeOwner.gid) == 0 else {
                OverlayMount.detach(target)
                try? FileManager.default.removeItem(atPath: layers)
                await note("gantry: checkout: cannot set origin in the mounted work tree: copying the history\n")
                return nil
            }
        }
        let how = claim.ready ? "was at the commit" : "was brought to the commit"
        await note("gantry: checkout: mounted this host's work tree \(claim.slot.index), which \(how)\n")
        await note("gantry: checkout: HEAD is \(commit)\(request.path.isEmpty ? "" : " in \(request.path)")\n")
        return MountedTree(target: target, layers: layers, lock: claim.lock)
    }

    /// Under the mirror's lock, into an exclusive tree: a clone of the mirror if the tree
    /// is new (its packs copied as they are), else a fetch of the mirror's branches and
    /// tags, and of the commit by id if no ref reaches it. Always a fetch, so the tree's
    /// branches are the mirror's as a copied history's are.
    private func fetchObjects(
        of commit: String, into tree: String, from mirror: String, in directory: String
    ) async throws(CheckoutFailure) {
        let local = command(allowFile: true)
        guard FileManager.default.fileExists(atPath: tree + "/.git/HEAD") else {
            try? FileManager.default.removeItem(atPath: tree)
            let clone = ["clone", "--quiet", "--local", "--no-hardlinks", "--no-checkout", "--template=", "--", mirror, tree]
            try await run(local, clone, in: directory, "create a work tree")
            try await run(
                local, Self.safeDirectory(tree) + ["config", "core.logAllRefUpdates", "false"], in: tree, "configure a work tree")
            return
        }
        let safe = Self.safeDirectory(tree)
        let refs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
        try await run(local, safe + ["fetch", "--quiet", "--prune", "--no-tags", "--", mirror] + refs, in: tree, "update a work tree")
        if await !hasCommit(commit, in: tree) {
            try await run(local, safe + ["fetch", "--quiet", "--no-tags", "--", mirror, commit], in: tree, "update a work tree")
        }
        _ = try? await local.run(
            safe + ["-c", "gc.auto=6700", "-c", "gc.autoPackLimit=50", "-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"],
            in: tree)
    }

    /// Brings an exclusive tree to `commit`: checked out, cleaned of anything else, local
    /// branches at the mirror's, no trace of earlier commits (`FETCH_HEAD`, `ORIG_HEAD`,
    /// reflogs), origin without credentials, every file the owner's, HEAD verified; then
    /// marked ready and the lock shared. A tree that fails before it is marked is removed
    /// (still under the exclusive lock) to be cloned again.
    private func update(_ claim: WorkTrees.Claim, to commit: String, request: CheckoutRequest) async throws(CheckoutFailure) {
        let tree = claim.slot.tree
        do {
            try await bring(claim, to: commit, request: request)
        } catch {
            try? FileManager.default.removeItem(atPath: tree)
            throw error
        }
        let wanted = marker(for: commit)
        guard wanted.write(claim.slot.marker), claim.lock.share(), WorkTreeMarker.read(claim.slot.marker) == wanted else {
            // Without the lock (a failed conversion), the tree may be another slot's now:
            // it is not ours to remove.
            throw CheckoutFailure("another slot took the work tree while it was being marked ready")
        }
    }

    private func bring(_ claim: WorkTrees.Claim, to commit: String, request: CheckoutRequest) async throws(CheckoutFailure) {
        let tree = claim.slot.tree
        let local = command(allowFile: true)
        let safe = Self.safeDirectory(tree)
        let agent = (uid: UInt32(geteuid()), gid: UInt32(getegid()))
        // git rewrites only the files whose content changed, by the index. A commit that
        // changes `.gitattributes` (line endings, encodings) changes how unchanged blobs
        // are written, so then the tree is emptied and written whole, as a fresh checkout
        // is (without the index alone, git would still read the old attributes from the
        // files on disk while it writes).
        let previous = try? await local.run(safe + ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], in: tree)
        let head = String((previous?.output ?? "").filter { !$0.isWhitespace })
        if CheckoutRequest.isFullCommitID(head), head != commit {
            let attributes = try? await local.run(
                safe + ["diff", "--quiet", head, commit, "--", "*.gitattributes"], in: tree)
            if attributes?.status != 0 {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: tree)) ?? [] where name != ".git" {
                    try? FileManager.default.removeItem(atPath: "\(tree)/\(name)")
                }
                unlink(tree + "/.git/index")
            }
        }
        let wholeTree = !FileManager.default.fileExists(atPath: tree + "/.git/index")
        try await run(
            local, safe + ["-c", "checkout.workers=0", "checkout", "--quiet", "--force", "--detach", commit], in: tree,
            "check out the work tree")
        if claim.previous == nil {
            // Left by a killed agent, or new: anything git does not know goes.
            try await run(local, safe + ["clean", "-ffdxq"], in: tree, "clean the work tree")
        }
        if wholeTree { try await refreshIndex(of: tree) }
        try await run(local, safe + ["config", "remote.origin.url", request.repository.withoutCredentials], in: tree, "configure origin")
        try await run(local, safe + ["config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"], in: tree, "configure origin")
        try await alignBranches(in: tree)
        for name in ["FETCH_HEAD", "ORIG_HEAD", "logs"] { try? FileManager.default.removeItem(atPath: "\(tree)/.git/\(name)") }
        // What git writes is the agent's: with the agent as the owner, and a tree that was
        // wholly its before (or new), there is nothing to change.
        let previousOwner = claim.previous.map { (uid: $0.uid, gid: $0.gid) }
        let allAgents = treeOwner == agent && (wholeTree || previousOwner.map { $0 == agent } == true)
        if !allAgents {
            do {
                try await WorkDirectoryHandover.giveMismatched(tree, uid: treeOwner.uid, gid: treeOwner.gid)
            } catch {
                throw CheckoutFailure("\(error)")
            }
        }
        try await verifyHead(commit, in: tree, safe: true)
    }

    /// After the whole tree was written: the index again, once the clock has moved on to
    /// the next second. git cannot tell a file written in the same second as the index
    /// from one changed after it (racy git), so it marks such entries to be hashed again:
    /// after a checkout of 30,000 files most of them, which the next update of the tree
    /// then re-read (0.4 s, where the files a push changed take 0.05 s). Done here, the
    /// cost falls on the rare checkout that writes a whole tree, not on every update.
    private func refreshIndex(of tree: String) async throws(CheckoutFailure) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let rest = 1_000_000_000 - Int64(now.tv_nsec) + 10_000_000
        try? await Task.sleep(for: .nanoseconds(rest))
        _ = try await outcome(command(allowFile: true), Self.safeDirectory(tree) + ["update-index", "-q", "--refresh"], in: tree)
    }

    /// Local branches (the mirror's default one, from the clone) at their `origin/`
    /// counterparts, or gone with them, as in a fresh copy of the history.
    private func alignBranches(in tree: String) async throws(CheckoutFailure) {
        let local = command(allowFile: true)
        let safe = Self.safeDirectory(tree)
        let listed = try await outcome(local, safe + ["for-each-ref", "--format=%(refname:strip=2)", "refs/heads/"], in: tree)
        for branch in listed.output.split(whereSeparator: \.isNewline).prefix(100) {
            let remote = try await outcome(
                local, safe + ["rev-parse", "--verify", "--quiet", "refs/remotes/origin/\(branch)"], in: tree)
            let id = String(remote.output.filter { !$0.isWhitespace })
            let arguments =
                remote.succeeded && CheckoutRequest.isFullCommitID(id)
                ? ["update-ref", "--no-deref", "refs/heads/\(branch)", id] : ["update-ref", "-d", "refs/heads/\(branch)"]
            try await run(local, safe + arguments, in: tree, "update the work tree's branches")
        }
    }

    /// Fails unless HEAD in `directory` is exactly `commit`.
    func verifyHead(_ commit: String, in directory: String, safe: Bool) async throws(CheckoutFailure) {
        let arguments = (safe ? Self.safeDirectory(directory) : []) + ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]
        let head = try await outcome(command(allowFile: true), arguments, in: directory)
        let checkedOut = String(head.output.filter { !$0.isWhitespace })
        guard head.succeeded, checkedOut == commit else {
            throw CheckoutFailure("the checkout's HEAD is `\(checkedOut.logSafe(maximum: 80))`, not the commit \(commit)")
        }
    }

    private func hasCommit(_ commit: String, in tree: String) async -> Bool {
        let arguments = Self.safeDirectory(tree) + ["cat-file", "-e", "--end-of-options", "\(commit)^{commit}"]
        return (try? await command(allowFile: true).run(arguments, in: tree))?.succeeded ?? false
    }

    /// A tree belongs to the step user, and git refuses a repository another user owns
    /// unless told it is safe. It is: only the agent can reach the tree (its directory is
    /// the agent's, 0700), and steps see it only through their overlay.
    static func safeDirectory(_ tree: String) -> [String] {
        ["-c", "safe.directory=\(tree)"]
    }
}
