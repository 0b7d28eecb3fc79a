import BenchKit
import Foundation
import GantryProtocol

/// Scenario 8 (issue 13): moving bytes around a job. Artifact upload and download of one
/// large file, a checkout of a large repository from the host's mirror, and a cache
/// restore of many small files, each next to what the machine does without Gantry.
///
/// One cluster per run, its API over TLS (`serve --http-tls`, the coordinator's own
/// certificate), one agent with default flags. Each figure is taken where it is honest:
///
/// - **Upload**: the `gantry artifact upload` CLI inside a step (with the job token the
///   agent exports), timed by the step itself: `date +%s%N` just before and just after it.
///   It includes the CLI's start and its sha256 of the file before sending.
/// - **Download**: `gantry artifact download` from the workstation side with the admin
///   token, timed around the process (start, TLS, transfer, sha256 check, rename).
/// - **Ceiling**: `cp` of the same file on the same disk (the source in the page cache, as
///   it is for the upload; the copy not synced, as neither side's is).
/// - **Checkout and cache restore**: what happens between a pipeline's submission and its
///   step's first command, which prints `date +%s%N`: submit response → first command,
///   minus the same for a pipeline with no checkout and no cache (dispatch alone, median
///   of several), so what remains is the checkout or the restore.
/// - **Checkout ceiling**: a fresh `git clone` (and `--depth 1`) of the same repository
///   from the same `git daemon` on 127.0.0.1, each loopback clone timed between two
///   checkouts from the mirror so both meet the disk in the same state (on ext4 without a
///   journal, creating files just after many were deleted costs several times more); and
///   the same clone from a `git daemon` behind a rate-limited link (`ShapedLink`), where
///   the network has a cost, as it has between a build host and its git server.
struct TransfersScenario {
    struct Artifacts {
        var bytes: Int
        var copySeconds: Double
        /// `cp` then `sync FILE` (an fsync of the copy): both Gantry sides fsync what they wrote.
        var copySyncedSeconds: Double
        /// `dd bs=1M`: the same copy through user space.
        var blockCopySeconds: Double = 0
        /// `openssl dgst -sha256` of the file (page cache): the hash each side computes.
        var hashSeconds: Double = 0
        /// In-memory rates from `openssl speed` (16 KiB blocks, MB/s): sha256 and the
        /// AES-128-GCM of TLS 1.3; nil where openssl is missing.
        var memoryHashMBps: Double?
        var cipherMBps: Double?
        var cores = 1
        var uploadSeconds: Double
        var downloadSeconds: Double
        var copyMBps: Double { Double(bytes) / 1e6 / copySeconds }
        var copySyncedMBps: Double { Double(bytes) / 1e6 / copySyncedSeconds }
        var uploadMBps: Double { Double(bytes) / 1e6 / uploadSeconds }
        var downloadMBps: Double { Double(bytes) / 1e6 / downloadSeconds }
        var blockCopyMBps: Double { Double(bytes) / 1e6 / blockCopySeconds }

        /// The most a transfer over TLS verified by digest at both ends can reach on this
        /// machine, from the rates measured here: every byte is hashed twice (sender and
        /// receiver), encrypted and decrypted once, and passes twice through user space
        /// (file → sender → socket, socket → receiver → file: two `dd`s), and all of that
        /// shares `cores` CPUs. Nothing else (HTTP, the blob store's fsync) is counted, so it
        /// is an upper bound.
        var verifiedTransferCeilingMBps: Double? {
            guard let memoryHashMBps, let cipherMBps else { return nil }
            return Double(cores) / (2 / memoryHashMBps + 2 / cipherMBps + 2 / blockCopyMBps)
        }
    }

    struct Checkout {
        var files: Int
        var commits: Int
        var historyBytes: Int
        var packBytes: Int
        var worktreeBytes: Int
        /// Fresh clones over loopback, each timed between two checkouts from the mirror.
        var freshClones: [Double]
        var freshClone: Double { Spread(freshClones).median }
        var freshShallowClone: Double
        /// Fresh clones over a rate-limited link, by rate in Mbit/s; empty when skipped.
        var linkClones: [(megabits: Int, seconds: Double)]
        /// Why the rate-limited clones were skipped, if they were.
        var linkSkipped: String?
        /// The first checkout on the host: the mirror is empty, so it fetches first.
        var firstCheckout: Double
        /// The commit already in the mirror and in one of the host's work trees (mounted).
        var mirrorCheckouts: [Double]
        var mirrorShallowCheckouts: [Double]
        /// Each after a push of `pushFiles` changed files: the fetch of the push into the
        /// mirror, then a work tree brought from an earlier commit to it, then the mount.
        var pushCheckouts: [Double]
        var pushFiles: Int
        /// The commit in the mirror, on an agent without work trees (`--git-work-trees 0`):
        /// the history copied and every file written, as before work trees.
        var copyCheckouts: [Double]
    }

    struct Cache {
        var files: Int
        var rawBytes: Int
        var archiveBytes: Int
        var restores: [Double]
    }

    struct Run {
        var index: Int
        var dispatchBaseline: [Double]
        var artifacts: Artifacts
        var checkout: Checkout
        var cache: Cache
        /// The work dirs' filesystem, and what about it shapes the figures.
        var filesystem: String
        var filesystemNote: String
        var baseline: Double { Spread(dispatchBaseline).median }
    }

    let context: BenchContext
    var fileBytes: Int { context.quick ? 64 << 20 : 1 << 30 }
    var repositoryFiles: Int { context.quick ? 3_000 : 30_000 }
    /// Commits after the first; each rewrites `rewrittenPerCommit` files with new content.
    var laterCommits: Int { context.quick ? 2 : 10 }
    var rewrittenPerCommit: Int { context.quick ? 500 : 3_000 }
    /// Files a timed push changes (a typical push touches a few dozen).
    var pushFiles: Int { context.quick ? 20 : 50 }
    var cacheFiles: Int { context.quick ? 2_000 : 20_000 }
    /// Repeats of each timed checkout and restore (the median is reported).
    var repeats: Int { context.quick ? 1 : 3 }
    let git = "/usr/bin/git"

    func run() async throws -> [Run] {
        let big = try prepareBigFile()
        let repository = try prepareRepository()
        let cacheSource = try prepareCacheFiles()
        var runs: [Run] = []
        for index in 1...context.runs {
            let cluster = try Cluster(name: "transfers-\(index)", binaries: context.binaries, workDir: context.workDir)
            // Where trees are written: the agent's work dirs and the fresh clones (see
            // `treeRoot`). Both sides of every comparison write there.
            let trees = Self.treeRoot(index: index) ?? cluster.root + "/trees"
            try FileManager.default.createDirectory(atPath: trees, withIntermediateDirectories: true)
            var daemon: ChildProcess?
            defer {
                daemon?.stop(grace: .seconds(5))
                cluster.tearDown()
                try? FileManager.default.removeItem(atPath: trees)
            }
            do {
                // The ceiling for the checkout first, before the cluster takes any CPU.
                let port = try freeLoopbackPort()
                let served = try startGitDaemon(port: port, base: repository.base, log: cluster.root + "/git-daemon.log")
                daemon = served
                let url = "git://127.0.0.1:\(port)/\(repository.name)"
                let freshShallow = try timedClone(url: url, into: trees + "/clone-shallow", shallow: true)
                context.log("  fresh git clone --depth 1 \(String(format: "%.2f", freshShallow)) s")

                try cluster.startCoordinator(extraArguments: ["--http-tls"])
                try cluster.startAgents(count: 1, labels: "pool=transfers", cgroups: true, workRoot: trees + "/work")
                let api = try cluster.client
                let marks = cluster.root + "/marks"
                try FileManager.default.createDirectory(atPath: marks, withIntermediateDirectories: true)
                let probe = Probe(api: api, marks: marks)

                var baseline: [Double] = []
                for n in 1...(context.quick ? 3 : 7) {
                    let (delay, _) = try await probe.firstCommandDelay(name: "baseline-\(n)", yaml: "checkout: false\n")
                    baseline.append(delay)
                }
                let dispatch = Spread(baseline).median
                context.log("  dispatch alone (submit → first command): median \(ms(dispatch * 1000))")

                let artifacts = try await measureArtifacts(cluster: cluster, probe: probe, file: big)
                context.log(
                    "  artifact \(big.bytes >> 20) MiB: cp \(f(artifacts.copyMBps, 0)) MB/s, upload \(f(artifacts.uploadMBps, 0)) MB/s, "
                        + "download \(f(artifacts.downloadMBps, 0)) MB/s")

                let cache = try await measureCache(probe: probe, source: cacheSource, baseline: dispatch)
                context.log(
                    "  cache of \(cache.files) files: archive \(cache.archiveBytes) bytes, restore median "
                        + "\(f(Spread(cache.restores).median, 3)) s")

                var checkout = try await measureCheckout(
                    cluster: cluster, probe: probe, url: url, repository: repository, baseline: dispatch, trees: trees,
                    freshShallow: freshShallow)
                context.log(
                    "  checkout from the mirror: median \(f(Spread(checkout.mirrorCheckouts).median, 3)) s, depth 1 "
                        + "\(f(Spread(checkout.mirrorShallowCheckouts).median, 3)) s (first, with fetch: \(f(checkout.firstCheckout, 3)) s); "
                        + "fresh clone over loopback \(f(checkout.freshClone, 3)) s; after a push of \(checkout.pushFiles) files "
                        + "\(f(Spread(checkout.pushCheckouts).median, 3)) s; without work trees \(f(Spread(checkout.copyCheckouts).median, 3)) s")
                switch measureLinkClones(repository: repository, into: trees + "/clone-link") {
                case .success(let clones):
                    checkout.linkClones = clones
                    context.log("  fresh git clone over a limited link: " + clones.map { "\($0.megabits) Mbit/s \(f($0.seconds, 2)) s" }.joined(separator: ", "))
                case .failure(let why):
                    checkout.linkSkipped = why.description
                    context.log("  fresh git clone over a limited link skipped: \(why)")
                }
                let treeFilesystem = Filesystem.of(trees)
                let disk = Filesystem.of(cluster.root)
                let note =
                    treeFilesystem == disk
                    ? disk.note
                    : "the disk (\(disk.description): the git mirror, the blob store, the artifact files) is not used for them"
                        + (disk.note.isEmpty ? "." : ": \(disk.note)")
                runs.append(
                    Run(
                        index: index, dispatchBaseline: baseline, artifacts: artifacts, checkout: checkout, cache: cache,
                        filesystem: treeFilesystem.description, filesystemNote: note))
            } catch {
                throw HarnessError("transfers run \(index) failed: \(error)\n\(cluster.diagnostics())")
            }
        }
        return runs
    }

    // MARK: - Artifacts

    private func measureArtifacts(cluster: Cluster, probe: Probe, file: BigFile) async throws -> Artifacts {
        let copy = cluster.root + "/copy.bin"
        let copyStarted = ContinuousClock.now
        let copied = try runCommand("/bin/cp", [file.path, copy], workDir: cluster.root, timeout: .seconds(600))
        let copySeconds = (ContinuousClock.now - copyStarted).seconds
        unlink(copy)
        guard copied.status == 0 else { throw HarnessError("cp failed: \(copied.output)") }
        let syncedStarted = ContinuousClock.now
        let synced = try runCommand(
            "/bin/sh", ["-c", "cp '\(file.path)' '\(copy)' && sync '\(copy)'"], workDir: cluster.root, timeout: .seconds(600))
        let copySyncedSeconds = (ContinuousClock.now - syncedStarted).seconds
        unlink(copy)
        guard synced.status == 0 else { throw HarnessError("cp && sync failed: \(synced.output)") }
        // References beside `cp` (which copies inside the kernel, `copy_file_range`): a copy
        // through user space in 1 MiB blocks, and one sha256 of the file, which each side
        // of a transfer must compute at least once.
        func timed(_ what: String, _ script: String) throws -> Double {
            let started = ContinuousClock.now
            let result = try runCommand("/bin/sh", ["-c", script], workDir: cluster.root, timeout: .seconds(600))
            let seconds = (ContinuousClock.now - started).seconds
            unlink(copy)
            guard result.status == 0 else { throw HarnessError("\(what) failed: \(result.output)") }
            return seconds
        }
        let blockCopySeconds = try timed("dd", "dd if='\(file.path)' of='\(copy)' bs=1M status=none")
        // OpenSSL's sha256 uses the CPU's SHA extensions, as swift-crypto (BoringSSL) does in
        // Gantry; coreutils' `sha256sum` does not (4-5× slower here), so it is only the
        // fallback.
        let hashSeconds = try timed(
            "sha256", "if command -v openssl >/dev/null; then openssl dgst -sha256 '\(file.path)'; else sha256sum '\(file.path)'; fi > /dev/null")

        let memoryHashMBps = opensslSpeed("sha256")
        let cipherMBps = opensslSpeed("aes-128-gcm")

        let cli = context.binaries + "/gantry"
        let yaml = """
            steps:
              - key: upload
                checkout: false
                commands:
                  - date +%s%N > \(probe.marks)/upload-start
                  - \(cli) artifact upload \(file.path) --name big.bin
                  - date +%s%N > \(probe.marks)/upload-end

            """
        let pipeline = try await probe.api.submit(yaml: yaml, file: "upload.yml")
        _ = try await probe.waitForSuccess(pipeline.jobs[0].id, timeout: .seconds(900))
        let uploadSeconds = Double(try probe.mark("upload-end") - probe.mark("upload-start")) / 1e9

        let target = cluster.root + "/downloaded"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let downloadStarted = ContinuousClock.now
        let downloaded = try runCommand(
            cli,
            [
                "artifact", "download", "big.bin", "--pipeline", pipeline.id, "--to", target, "--server", cluster.serverURL,
                "--ca-file", cluster.caFile, "--token", probe.api.token,
            ], workDir: cluster.root, timeout: .seconds(900))
        let downloadSeconds = (ContinuousClock.now - downloadStarted).seconds
        guard downloaded.status == 0 else { throw HarnessError("gantry artifact download failed: \(downloaded.output)") }
        let size = (try? FileManager.default.attributesOfItem(atPath: target + "/big.bin"))?[.size] as? Int
        guard size == file.bytes else { throw HarnessError("downloaded \(size ?? -1) of \(file.bytes) bytes") }
        try? FileManager.default.removeItem(atPath: target)
        return Artifacts(
            bytes: file.bytes, copySeconds: copySeconds, copySyncedSeconds: copySyncedSeconds, blockCopySeconds: blockCopySeconds,
            hashSeconds: hashSeconds, memoryHashMBps: memoryHashMBps, cipherMBps: cipherMBps,
            cores: ProcessInfo.processInfo.activeProcessorCount, uploadSeconds: uploadSeconds, downloadSeconds: downloadSeconds)
    }

    /// `openssl speed -evp ALGORITHM` on 16 KiB blocks for 2 s, in MB/s (its
    /// machine-readable `+F:…:NAME:BYTES_PER_SECOND` line); nil without openssl.
    private func opensslSpeed(_ algorithm: String) -> Double? {
        guard
            let result = try? runCommand(
                "/bin/sh", ["-c", "openssl speed -evp \(algorithm) -bytes 16384 -seconds 2 -mr 2>/dev/null"],
                workDir: context.workDir, timeout: .seconds(60)),
            result.status == 0,
            let line = result.output.split(whereSeparator: \.isNewline).last(where: { $0.hasPrefix("+F:") }),
            let rate = line.split(separator: ":").last.flatMap({ Double($0) }), rate > 0
        else { return nil }
        return rate / 1e6
    }

    // MARK: - Cache

    private func measureCache(probe: Probe, source: String, baseline: Double) async throws -> Cache {
        func yaml(_ name: String, _ command: String) -> String {
            """
            steps:
              - key: cached
                checkout: false
                cache:
                  key: bench-files-v1
                  paths: [files]
                commands:
                  - date +%s%N > \(probe.marks)/\(name)
                  - \(command)

            """
        }
        // The miss: the step makes the files, the agent archives and saves them after it.
        let (_, saveLog) = try await probe.firstCommandDelay(
            name: "cache-save", yaml: yaml("cache-save", "test ! -e files && cp -R \(source) files"), branch: "main",
            wholeYAML: true)
        guard let archive = Self.number(after: "(", in: saveLog, line: "gantry: cache saved as"), archive > 0 else {
            throw HarnessError("the first cache run saved nothing: \(saveLog.suffix(1000))")
        }
        var restores: [Double] = []
        for n in 1...repeats {
            let name = "cache-hit-\(n)"
            let check = "test \"$(find files -type f | wc -l)\" -eq \(cacheFiles)"
            let (delay, log) = try await probe.firstCommandDelay(
                name: name, yaml: yaml(name, check), branch: "main", wholeYAML: true)
            guard log.contains("gantry: cache restored from bench-files-v1") else {
                throw HarnessError("the cache was not restored: \(log.suffix(1000))")
            }
            restores.append(delay - baseline)
        }
        let raw = cacheFileSizes().reduce(0, +)
        return Cache(files: cacheFiles, rawBytes: raw, archiveBytes: archive, restores: restores)
    }

    // MARK: - Checkout

    private func measureCheckout(
        cluster: Cluster, probe: Probe, url: String, repository: Repository, baseline: Double, trees: String,
        freshShallow: Double
    ) async throws -> Checkout {
        func checkout(_ name: String, depth: Int? = nil, commit: String, pool: String? = nil) async throws -> (Double, String) {
            let spec = (depth.map { "checkout: {depth: \($0)}\n" } ?? "") + (pool.map { "agents: {pool: \($0)}\n" } ?? "")
            return try await probe.firstCommandDelay(name: name, yaml: spec, repository: url, commit: commit, branch: "main")
        }
        func require(_ log: String, _ lines: [String], absent: [String] = [], _ what: String) throws {
            guard lines.allSatisfy(log.contains), !absent.contains(where: log.contains) else {
                throw HarnessError("\(what): \(log.suffix(800))")
            }
        }
        let (first, firstLog) = try await checkout("checkout-first", commit: repository.commit)
        try require(firstLog, ["gantry: checkout: fetching", "mounted this host's work tree"], "the first checkout did not fetch and mount")
        var full: [Double] = []
        var shallow: [Double] = []
        var fresh: [Double] = []
        for n in 1...repeats {
            fresh.append(try timedClone(url: url, into: trees + "/clone", shallow: false))
            for depth in [nil, 1] as [Int?] {
                let (delay, log) = try await checkout(
                    "checkout-\(depth == nil ? "full" : "depth1")-\(n)", depth: depth, commit: repository.commit)
                try require(log, ["is already in this host's mirror, no fetch"], "the mirror did not hold the commit")
                if depth == nil {
                    try require(log, ["which was at the commit"], "no work tree was at the commit")
                    full.append(delay - baseline)
                } else {
                    shallow.append(delay - baseline)
                }
            }
        }
        // Pushes: each a new commit on main that the mirror fetches and a work tree is
        // brought to, as every pipeline of a busy repository finds it.
        var pushed: [Double] = []
        var head = repository.commit
        for n in 1...repeats {
            head = try pushCommit(to: repository, number: n)
            let (delay, log) = try await checkout("checkout-push-\(n)", commit: head)
            try require(log, ["gantry: checkout: fetching", "which was brought to the commit"], "the push was not fetched into a tree")
            pushed.append(delay - baseline)
        }
        // The same commit on an agent of the same host without work trees.
        let copier = try cluster.startAgents(
            count: 1, labels: "pool=copy", cgroups: true, slotPrefix: "copy", workRoot: trees + "/work",
            extraArguments: ["--git-work-trees", "0"])
        defer { for agent in copier { agent.stop(grace: .seconds(10)) } }
        var copied: [Double] = []
        for n in 1...repeats {
            let (delay, log) = try await checkout("checkout-copy-\(n)", commit: head, pool: "copy")
            try require(log, ["is already in this host's mirror, no fetch"], absent: ["mounted"], "the copy agent did not copy")
            copied.append(delay - baseline)
        }
        return Checkout(
            files: repositoryFiles, commits: laterCommits + 1, historyBytes: repository.historyBytes,
            packBytes: repository.packBytes, worktreeBytes: repository.worktreeBytes, freshClones: fresh,
            freshShallowClone: freshShallow, linkClones: [], linkSkipped: nil, firstCheckout: first - baseline,
            mirrorCheckouts: full, mirrorShallowCheckouts: shallow, pushCheckouts: pushed, pushFiles: pushFiles,
            copyCheckouts: copied)
    }

    /// Adds a commit to the served repository's `main` that rewrites `pushFiles` files,
    /// with `git fast-import`; returns its id.
    private func pushCommit(to repository: Repository, number: Int) throws -> String {
        let bare = repository.base + "/" + repository.name
        var stream = "commit refs/heads/main\ncommitter Bench <bench@127.0.0.1> \(1_800_000_000 + number * 60) +0000\n"
        let message = "push \(number)\n"
        stream += "data \(message.utf8.count)\n\(message)from refs/heads/main^0\n"
        for index in 0..<pushFiles {
            let file = (number * 7_919 + index * 613) % repositoryFiles
            let content = String(repeating: "push \(number) changes file \(file)\n", count: 100)
            stream += "M 100644 inline src/module\(file % 100)/file\(file).txt\ndata \(content.utf8.count)\n\(content)\n"
        }
        let path = context.workDir + "/push.fast-import"
        try stream.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let imported = try runCommand(
            "/bin/sh", ["-c", "exec '\(git)' --git-dir='\(bare)' fast-import --quiet < '\(path)'"], workDir: context.workDir)
        guard imported.status == 0 else { throw HarnessError("git fast-import of a push failed: \(imported.output)") }
        let head = try runCommand(git, ["--git-dir=\(bare)", "rev-parse", "refs/heads/main"], workDir: context.workDir)
        let commit = head.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard head.status == 0, commit.count == 40 else { throw HarnessError("git rev-parse failed: \(head.output)") }
        return commit
    }

    /// A directory on tmpfs (`/dev/shm`) for the trees the scenario writes, or nil where
    /// there is none. On this machine's disk (ext4 without a journal, see `Filesystem`)
    /// creating files costs up to 1 ms each for 30 seconds after many were deleted, which
    /// every job's work dir and every clone does: measured there, a checkout of 30,000
    /// files timed the filesystem's inode allocator rather than git or the agent. The
    /// git mirror, the blob store and the artifacts stay on the disk.
    static func treeRoot(index: Int) -> String? {
        let shm = Filesystem.of("/dev/shm")
        guard shm.type == "tmpfs", FileManager.default.isWritableFile(atPath: "/dev/shm") else { return nil }
        return "/dev/shm/gantry-bench-\(getpid())-\(index)"
    }

    /// Link rates for the fresh clone over a limited link, in Mbit/s.
    static let linkRates = [1_000, 100]

    /// A fresh `git clone` from a `git daemon` inside a `ShapedLink`'s namespace, once per
    /// rate in `linkRates`, or why it could not be done.
    private func measureLinkClones(
        repository: Repository, into directory: String
    ) -> Result<[(megabits: Int, seconds: Double)], HarnessError> {
        let link: ShapedLink
        switch ShapedLink.make(workDir: context.workDir) {
        case .success(let made): link = made
        case .failure(let why): return .failure(why)
        }
        defer { link.tearDown() }
        let port = 9418
        let log = context.workDir + "/git-daemon-link.log"
        let (executable, arguments) = link.inside(
            git,
            [
                "daemon", "--reuseaddr", "--listen=\(link.serverAddress)", "--port=\(port)", "--base-path=\(repository.base)",
                "--export-all", repository.base,
            ])
        do {
            let daemon = try ChildProcess.spawn(name: "git daemon (link)", executable: executable, arguments: arguments, stdout: log, stderr: log)
            defer { daemon.stop(grace: .seconds(5)) }
            let url = "git://\(link.serverAddress):\(port)/\(repository.name)"
            try waitForGitDaemon(daemon, url: url, log: log)
            var clones: [(megabits: Int, seconds: Double)] = []
            for rate in Self.linkRates {
                try link.limit(megabitsPerSecond: rate)
                clones.append((rate, try timedClone(url: url, into: directory, shallow: false)))
            }
            return .success(clones)
        } catch {
            return .failure(error as? HarnessError ?? HarnessError("\(error)"))
        }
    }

    private func timedClone(url: String, into directory: String, shallow: Bool) throws -> Double {
        try? FileManager.default.removeItem(atPath: directory)
        let started = ContinuousClock.now
        let result = try runCommand(
            git, ["clone", "--quiet"] + (shallow ? ["--depth", "1"] : []) + [url, directory],
            workDir: context.workDir, timeout: .seconds(900))
        let seconds = (ContinuousClock.now - started).seconds
        try? FileManager.default.removeItem(atPath: directory)
        guard result.status == 0 else { throw HarnessError("git clone \(url) failed: \(result.output)") }
        return seconds
    }

    private func startGitDaemon(port: Int, base: String, log: String) throws -> ChildProcess {
        let daemon = try ChildProcess.spawn(
            name: "git daemon", executable: git,
            arguments: [
                "daemon", "--reuseaddr", "--listen=127.0.0.1", "--port=\(port)", "--base-path=\(base)", "--export-all",
                base,
            ], stdout: log, stderr: log)
        do {
            try waitForGitDaemon(daemon, url: "git://127.0.0.1:\(port)/repo.git", log: log)
        } catch {
            daemon.stop()
            throw error
        }
        return daemon
    }

    /// Returns once the daemon answers at `url`: at most 100 tries, 100 ms apart.
    private func waitForGitDaemon(_ daemon: ChildProcess, url: String, log: String) throws {
        for _ in 0..<100 {
            guard daemon.isRunning else { throw HarnessError("git daemon exited: \(ChildProcess.tail(of: log))") }
            let probe = try runCommand(git, ["ls-remote", url, "HEAD"], workDir: context.workDir)
            if probe.status == 0 { return }
            usleep(100_000)
        }
        throw HarnessError("git daemon did not answer at \(url)")
    }

    // MARK: - Inputs (made once per work dir, deterministic)

    struct BigFile {
        var path: String
        var bytes: Int
    }

    /// Incompressible bytes (a release tarball is), from a fixed seed.
    private func prepareBigFile() throws -> BigFile {
        let path = context.workDir + "/artifact-\(fileBytes).bin"
        if (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) == fileBytes {
            return BigFile(path: path, bytes: fileBytes)
        }
        guard let file = fopen(path + ".tmp", "w") else { throw HarnessError("cannot write \(path)") }
        var random = SplitMix(seed: 13)
        var buffer = [UInt64](repeating: 0, count: (1 << 20) / 8)
        var written = 0
        while written < fileBytes {
            for i in buffer.indices { buffer[i] = random.next() }
            let count = buffer.withUnsafeBytes { fwrite($0.baseAddress, 1, min($0.count, fileBytes - written), file) }
            guard count > 0 else { fclose(file); throw HarnessError("short write to \(path)") }
            written += count
        }
        fclose(file)
        guard rename(path + ".tmp", path) == 0 else { throw HarnessError("cannot rename to \(path)") }
        return BigFile(path: path, bytes: fileBytes)
    }

    struct Repository {
        var base: String
        var name: String
        var commit: String
        var historyBytes: Int
        var packBytes: Int
        var worktreeBytes: Int
    }

    /// A bare repository made with `git fast-import` from a generated stream: a first
    /// commit of `repositoryFiles` files in 100 directories, then `laterCommits` commits
    /// each rewriting `rewrittenPerCommit` of them. Contents are lines of hex from a fixed
    /// seed (text that compresses about 2×, as source does, but does not delta).
    private func prepareRepository() throws -> Repository {
        let base = context.workDir + "/git"
        let name = "repo.git"
        let bare = base + "/" + name
        let stream = context.workDir + "/repo.fast-import"
        try? FileManager.default.removeItem(atPath: base)
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let initialized = try runCommand(git, ["init", "--quiet", "--bare", "--initial-branch=main", bare], workDir: context.workDir)
        guard initialized.status == 0 else { throw HarnessError("git init failed: \(initialized.output)") }

        guard let out = fopen(stream, "w") else { throw HarnessError("cannot write \(stream)") }
        var random = SplitMix(seed: 1313)
        var history = 0
        var sizes = [Int](repeating: 0, count: repositoryFiles)
        func write(_ text: String) { _ = text.utf8CString.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count - 1, out) } }
        func blob(size: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(size)
            let hex = Array("0123456789abcdef".utf8)
            while bytes.count < size {
                let value = random.next()
                for shift in stride(from: 0, to: 64, by: 4) { bytes.append(hex[Int((value >> UInt64(shift)) & 0xf)]) }
                if bytes.count % 64 == 0 { bytes[bytes.count - 1] = 0x0A }
            }
            return Array(bytes.prefix(size))
        }
        func path(_ n: Int) -> String { "src/module\(n % 100)/file\(n).txt" }
        var time = 1_700_000_000
        for commit in 0...laterCommits {
            let changed: [Int] =
                commit == 0
                ? Array(0..<repositoryFiles)
                : (0..<rewrittenPerCommit).map { _ in Int(random.next() % UInt64(repositoryFiles)) }
            write("commit refs/heads/main\ncommitter Bench <bench@127.0.0.1> \(time) +0000\n")
            let message = "commit \(commit)\n"
            write("data \(message.utf8.count)\n\(message)")
            for n in Set(changed).sorted() {
                let size = commit == 0 ? 1_024 + Int(random.next() % 4_096) : 2_048 + Int(random.next() % 12_288)
                let content = blob(size: size)
                write("M 100644 inline \(path(n))\ndata \(content.count)\n")
                _ = content.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, out) }
                write("\n")
                history += content.count
                sizes[n] = content.count
            }
            write("\n")
            time += 3_600
        }
        fclose(out)
        let imported = try runCommand(
            "/bin/sh", ["-c", "exec '\(git)' --git-dir='\(bare)' fast-import --quiet < '\(stream)'"], workDir: context.workDir,
            timeout: .seconds(900))
        unlink(stream)
        guard imported.status == 0 else { throw HarnessError("git fast-import failed: \(imported.output)") }
        let head = try runCommand(git, ["--git-dir=\(bare)", "rev-parse", "refs/heads/main"], workDir: context.workDir)
        let commit = head.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard head.status == 0, commit.count == 40 else { throw HarnessError("git rev-parse failed: \(head.output)") }
        let pack = directorySize(bare + "/objects")
        context.log(
            "  repository: \(repositoryFiles) files, \(laterCommits + 1) commits, \(history / 1_000_000) MB of blobs, "
                + "\(pack / 1_000_000) MB packed")
        return Repository(
            base: base, name: name, commit: commit, historyBytes: history, packBytes: pack, worktreeBytes: sizes.reduce(0, +))
    }

    /// `cacheFiles` small files (100 B to 2 KiB of text) in 100 directories.
    private func prepareCacheFiles() throws -> String {
        let root = context.workDir + "/cache-source"
        try? FileManager.default.removeItem(atPath: root)
        var random = SplitMix(seed: 2013)
        let sizes = cacheFileSizes()
        for n in 0..<cacheFiles {
            let directory = root + "/d\(n % 100)"
            if n < 100 { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            var text = ""
            while text.utf8.count < sizes[n] { text += String(random.next(), radix: 36) + " " }
            let data = Data(text.utf8.prefix(sizes[n]))
            guard FileManager.default.createFile(atPath: directory + "/f\(n).txt", contents: data) else {
                throw HarnessError("cannot write the cache's source files")
            }
        }
        return root
    }

    private func cacheFileSizes() -> [Int] {
        var random = SplitMix(seed: 77)
        return (0..<cacheFiles).map { _ in 100 + Int(random.next() % 1_948) }
    }

    private func directorySize(_ path: String) -> Int {
        var total = 0
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        for case let entry as String in walker {
            if let size = try? FileManager.default.attributesOfItem(atPath: path + "/" + entry)[.size] as? Int { total += size }
        }
        return total
    }

    /// The number just after `marker` on the first line starting with `line`.
    static func number(after marker: String, in text: String, line prefix: String) -> Int? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains(prefix) }),
            let range = line.range(of: marker, options: .backwards)
        else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    /// A port free on 127.0.0.1 just now (bound to port 0, read back, closed): for
    /// `git daemon`, which takes no port 0.
    private func freeLoopbackPort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw HarnessError("socket failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        guard bound else { throw HarnessError("cannot bind 127.0.0.1:0") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Submits one-step pipelines whose first command writes `date +%s%N` to a mark file,
/// and measures submit response → that first command.
struct Probe {
    let api: APIClient
    let marks: String

    /// `yaml`: the step's extra keys (indented by the caller's choice below), or the whole
    /// file when `wholeYAML`; the step must write its mark to `marks/name` first.
    func firstCommandDelay(
        name: String, yaml: String, repository: String? = nil, commit: String? = nil, branch: String? = nil,
        wholeYAML: Bool = false
    ) async throws -> (Double, String) {
        let file: String
        if wholeYAML {
            file = yaml
        } else {
            file = "steps:\n  - key: probe\n    command: date +%s%N > \(marks)/\(name)\n"
                + yaml.split(separator: "\n").map { "    \($0)\n" }.joined()
        }
        let pipeline = try await api.submit(
            yaml: file, file: "\(name).yml", repository: repository, commit: commit, branch: branch)
        let submitted = realtimeNanoseconds()
        _ = try await waitForSuccess(pipeline.jobs[0].id, timeout: .seconds(900))
        let log = try await api.followLog(pipeline.jobs[0].id)
        return (Double(try mark(name) - submitted) / 1e9, log)
    }

    /// Polls the job every 20 ms until it ends (at most `timeout`); throws unless it succeeded.
    func waitForSuccess(_ id: String, timeout: Duration) async throws -> API.Job {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let job = try await api.job(id)
            if job.isTerminal {
                guard job.state == "succeeded" else {
                    let log = (try? await api.followLog(id)) ?? ""
                    throw HarnessError("job \(job.key) ended \(job.state) (\(job.reason ?? "")): \(log.suffix(1500))")
                }
                return job
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("job \(id) did not end in time")
    }

    func mark(_ name: String) throws -> Int64 {
        let text = try String(contentsOfFile: marks + "/" + name, encoding: .utf8)
        guard let value = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw HarnessError("no mark \(name)")
        }
        return value
    }
}
