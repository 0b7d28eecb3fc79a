import BenchKit
import Foundation

/// The transfers scenario's report (docs/benchmarks-transfers.md): the same header as
/// docs/benchmarks.md, then issue 13's targets and how they were measured.
extension ReportWriter {
    func transfersMarkdown() -> String {
        var out = header().replacingOccurrences(
            of: "# Benchmarks\n", with: "# Benchmarks: checkout, artifacts and caches (issue 13)\n", options: .anchored)
        out += """
            The rest of the benchmarks (dispatch, throughput, logs, fleet, footprint, history, micro) are in
            [benchmarks.md](benchmarks.md), from their own run.


            """
        guard let runs = results.transfers, !runs.isEmpty else {
            return out + "## Targets (issue 13)\n\n" + transfersNotMeasured() + "\n"
        }
        out += transfersTargets(runs)
        out += transfersDetails(runs)
        out += """
            ## How to run

            ```sh
            scripts/benchmark --scenarios transfers --no-micro            # writes this file only
            scripts/benchmark --quick --scenarios transfers --no-micro    # 64 MiB, 3,000 files: a smoke run
            ```
            \(results.durations["transfers"].map { "\nScenario wall time in this run: \(f($0, 0)) s (inputs generated, clusters started, all of the above).\n" } ?? "")
            """
        return out
    }

    private func transfersNotMeasured() -> String {
        if let reason = results.failures["transfers"] {
            return "Not measured: the scenario failed (\(reason.split(separator: "\n").first ?? ""))."
        }
        return "Not measured in this run."
    }

    private func transfersTargets(_ runs: [TransfersScenario.Run]) -> String {
        let upload = Spread(runs.map(\.artifacts.uploadMBps))
        let download = Spread(runs.map(\.artifacts.downloadMBps))
        let copy = Spread(runs.map(\.artifacts.copyMBps))
        let uploadShare = Spread(runs.map { $0.artifacts.uploadMBps / $0.artifacts.copyMBps }).median
        let downloadShare = Spread(runs.map { $0.artifacts.downloadMBps / $0.artifacts.copyMBps }).median
        let mirror = Spread(runs.map { Spread($0.checkout.pushCheckouts).median }).median
        let mounted = Spread(runs.map { Spread($0.checkout.mirrorCheckouts).median }).median
        let copied = Spread(runs.map { Spread($0.checkout.copyCheckouts).median }).median
        let mirrorShallow = Spread(runs.map { Spread($0.checkout.mirrorShallowCheckouts).median }).median
        let fresh = Spread(runs.map(\.checkout.freshClone)).median
        let freshShallow = Spread(runs.map(\.checkout.freshShallowClone)).median
        let restore = Spread(runs.map { Spread($0.cache.restores).median }).median
        let first = runs[0]
        let size = "\(f(Double(first.artifacts.bytes) / 1_073_741_824, 2)) GiB"
        var rows: [TargetRow] = []
        let ceilings = runs.compactMap(\.artifacts.verifiedTransferCeilingMBps)
        let ceiling = ceilings.isEmpty ? nil : Spread(ceilings).median
        func ofCeiling(_ rate: Double) -> String {
            guard let ceiling else { return "" }
            return ", \(f(rate / ceiling * 100, 0)) % of this machine's ceiling for a verified TLS transfer"
        }
        rows.append(TargetRow(
            "artifact upload (`gantry artifact upload` in a step, TLS) ≥ 50 % of `cp`, \(size)",
            "\(f(upload.median, 0)) MB/s = \(f(uploadShare * 100, 0)) % of `cp` at \(f(copy.median, 0)) MB/s\(ofCeiling(upload.median))",
            uploadShare >= 0.5))
        rows.append(TargetRow(
            "artifact download (`gantry artifact download`, admin token, TLS) ≥ 50 % of `cp`, \(size)",
            "\(f(download.median, 0)) MB/s = \(f(downloadShare * 100, 0)) % of `cp`\(ofCeiling(download.median))", downloadShare >= 0.5))
        if let ceiling {
            let a = first.artifacts
            rows.append(TargetRow(
                "this machine's ceiling for a TLS transfer verified by sha256 at both ends (model from measured rates)",
                "\(f(ceiling, 0)) MB/s = \(f(ceiling / copy.median * 100, 0)) % of `cp`: \(a.cores) cores / (2 sha256 at "
                    + "\(f(a.memoryHashMBps ?? 0, 0)) MB/s + AES-128-GCM in and out at \(f(a.cipherMBps ?? 0, 0)) MB/s + 2 user-space "
                    + "copies at `dd`'s \(f(a.blockCopyMBps, 0)) MB/s); the 50 % target is above it", nil))
        }
        let repositoryShape = "\(first.checkout.files.formatted()) files, \(first.checkout.commits) commits"
        let push = "after a push of \(first.checkout.pushFiles) files, its fetch included"
        rows.append(TargetRow(
            "checkout from the host's mirror ≥ 10× faster than a fresh `git clone` over loopback (\(repositoryShape); \(push))",
            "\(f(mirror, 2)) s vs \(f(fresh, 2)) s (machine ceiling, no network cost): \(f(fresh / mirror, 1))×", fresh / mirror >= 10))
        rows.append(TargetRow(
            "checkout of a commit a work tree is at (a retry, parallel steps; reported)",
            "\(f(mounted, 3)) s: \(f(fresh / mounted, 0))× a fresh `git clone`", nil))
        rows.append(TargetRow(
            "checkout from the mirror without work trees (`--git-work-trees 0`, reported)",
            "\(f(copied, 2)) s: \(f(fresh / copied, 1))× a fresh `git clone`", nil))
        for rate in TransfersScenario.linkRates {
            let clones = runs.compactMap { $0.checkout.linkClones.first { $0.megabits == rate }?.seconds }
            guard !clones.isEmpty else {
                rows.append(TargetRow(
                    "checkout from the mirror vs a fresh `git clone` over a \(rate) Mbit/s link",
                    "skipped: \(first.checkout.linkSkipped ?? "no figure")", nil))
                continue
            }
            let clone = Spread(clones).median
            rows.append(TargetRow(
                "checkout from the host's mirror ≥ 10× faster than a fresh `git clone` over a \(rate) Mbit/s link (\(repositoryShape); \(push))",
                "\(f(mirror, 2)) s vs \(f(clone, 2)) s: \(f(clone / mirror, 1))×", clone / mirror >= 10))
        }
        rows.append(TargetRow(
            "checkout `depth: 1` from the mirror (reported)",
            "\(f(mirrorShallow, 2)) s: \(f(fresh / mirrorShallow, 1))× a fresh `git clone`, "
                + "\(f(freshShallow / mirrorShallow, 1))× a fresh `git clone --depth 1` (\(f(freshShallow, 2)) s)", nil))
        rows.append(TargetRow(
            "cache restore of \(first.cache.files.formatted()) files (reported)",
            "\(f(restore, 2)) s; archive \(mib(Double(first.cache.archiveBytes))) (\(mib(Double(first.cache.rawBytes))) in the files)", nil))
        var out = "## Targets (issue 13): measured against target\n\n| target | measured | met |\n|---|---|---|\n"
        for row in rows {
            out += "| \(row.target) | \(row.measured) | \(row.met.map { $0 ? "yes" : "**no**" } ?? "–") |\n"
        }
        return out + "\n"
    }

    private func transfersDetails(_ runs: [TransfersScenario.Run]) -> String {
        let first = runs[0]
        var out = """
            ## 8. Checkout, artifacts and caches

            One fresh cluster per run: the coordinator serves its API over TLS with its own certificate
            (`serve --http-tls`; clients verify it against `STATE/ca.pem`), one agent with default flags
            (per-job cgroups, its git mirrors in `STATE/git-mirrors`). "Dispatch alone" is submit response →
            the step's first command (`date +%s%N`) for a step with no checkout and no cache, median of
            \(first.dispatchBaseline.count); the checkout and restore figures are the same interval for a step with a
            checkout or a cache, minus that median, so they hold the agent's whole work before the first
            command (for a checkout: the mirror lookup (and fetch) under its lock, then either a work tree
            claimed, brought to the commit if it is elsewhere, and mounted, or without one the copy of the
            commit's history into the work dir and writing the tree; verifying `HEAD`).

            ### Artifacts

            A file of \(f(Double(first.artifacts.bytes) / 1_048_576, 0)) MiB of incompressible bytes (fixed seed). Upload: `gantry artifact upload FILE --name big.bin`
            inside a step, with the job token the agent exports, timed by the step (`date +%s%N` just before
            and after the CLI): the CLI's start, its sha256 of the file, the upload session and its chunks over
            TLS, the coordinator hashing and storing them. Download: `gantry artifact download big.bin
            --pipeline P` from the workstation side with the admin token, timed around the process (TLS,
            transfer, sha256 check, fsync, rename). `cp`: the same file copied on the same disk, the source in the
            page cache as it is for the upload; the target compares with plain `cp` (the copy left in the page
            cache, the stricter ceiling), and `cp` followed by `sync` of the copy is shown too, since the
            coordinator's blob store and the CLI's download both fsync what they wrote. MB = 10⁶ bytes.

            References beside `cp`, which copies inside the kernel (`copy_file_range`) and so never
            passes the bytes through a process: `dd bs=1M` (the same copy through user space) and
            `openssl dgst -sha256` of the file (one hash with the CPU's SHA extensions, as
            swift-crypto computes it in Gantry; the sending side computes one before it sends and
            the receiving side one while it stores).

            | run | `cp` | `cp` + `sync` | `dd bs=1M` | sha256 | upload | download | upload / `cp` | download / `cp` |
            |---|---|---|---|---|---|---|---|---|

            """
        for run in runs {
            let a = run.artifacts
            out += "| \(run.index) | \(f(a.copyMBps, 0)) MB/s (\(f(a.copySeconds, 2)) s) | "
                + "\(f(a.copySyncedMBps, 0)) MB/s (\(f(a.copySyncedSeconds, 2)) s) | "
                + "\(f(Double(a.bytes) / 1e6 / a.blockCopySeconds, 0)) MB/s (\(f(a.blockCopySeconds, 2)) s) | "
                + "\(f(Double(a.bytes) / 1e6 / a.hashSeconds, 0)) MB/s (\(f(a.hashSeconds, 2)) s) | \(f(a.uploadMBps, 0)) MB/s "
                + "(\(f(a.uploadSeconds, 2)) s) | \(f(a.downloadMBps, 0)) MB/s (\(f(a.downloadSeconds, 2)) s) | "
                + "\(f(a.uploadMBps / a.copyMBps * 100, 0)) % | \(f(a.downloadMBps / a.copyMBps * 100, 0)) % |\n"
        }
        let c = first.checkout
        out += """

            ### Checkout

            A bare repository made with `git fast-import`: \(c.files.formatted()) files (\(mib(Double(c.worktreeBytes))) in the
            tree), \(c.commits) commits each rewriting part of them, \(mib(Double(c.historyBytes))) of blob content in
            the history, \(mib(Double(c.packBytes))) packed; served by `git daemon` on 127.0.0.1. The machine's ceiling
            is a fresh `git clone` of it (and `--depth 1`) from that daemon, with no network cost at all; each
            loopback clone is timed between two checkouts from the mirror, so both meet the disk in the same
            state. The trees (the agent's work dirs and the clones) are written on \(first.filesystem); \(first.filesystemNote) The same fresh clone
            over a rate-limited link is timed from a second `git daemon` in a network namespace of the
            harness's own, joined by a veth pair whose server side sends through a `tc` token bucket
            (\(TransfersScenario.linkRates.map { "\($0) Mbit/s" }.joined(separator: ", ")); no added latency), as a
            build host reaches its git server over a network. The pipeline names the repository
            (`git://127.0.0.1:PORT/repo.git`) and the full commit id. The agent keeps two work trees per
            repository (the default `--git-work-trees 2`) and mounts one as an overlay on the job's work dir.
            The first checkout on the host fetches into the mirror, clones it into a work tree and checks
            the tree out. "At the commit": a work tree is at the commit already (a retry, a pipeline's
            parallel steps), checked in each job's log ("already in this host's mirror, no fetch", "which
            was at the commit"). "After a push": each time a new commit rewriting \(c.pushFiles) files is added
            to the served repository (`git fast-import`, as a push would), and the checkout fetches it into
            the mirror over `git://` and brings the least recently used work tree to it ("fetching",
            "which was brought to the commit"): what every pipeline of an active repository meets.
            "Without work trees": a second agent of the same host with `--git-work-trees 0` checks the
            last commit out from the mirror by copying its history and writing every file.
            Medians of \(c.mirrorCheckouts.count) checkouts each.

            | run | dispatch alone | fresh `git clone`, loopback | fresh `--depth 1`, loopback | fresh `git clone`, limited link | first checkout (fetch, new work tree) | at the commit | after a push | without work trees | from the mirror, `depth: 1` | after a push vs fresh clone (loopback) |
            |---|---|---|---|---|---|---|---|---|---|---|

            """
        for run in runs {
            let c = run.checkout
            let mirror = Spread(c.pushCheckouts).median
            let link = c.linkClones.isEmpty ? "skipped" : c.linkClones.map { "\(f($0.seconds, 2)) s at \($0.megabits) Mbit/s" }.joined(separator: ", ")
            out += "| \(run.index) | \(ms(run.baseline * 1000)) | \(f(c.freshClone, 2)) s (\(c.freshClones.map { f($0, 2) }.joined(separator: ", "))) | "
                + "\(f(c.freshShallowClone, 2)) s | \(link) | "
                + "\(f(c.firstCheckout, 2)) s | \(f(Spread(c.mirrorCheckouts).median, 3)) s (\(c.mirrorCheckouts.map { f($0, 3) }.joined(separator: ", "))) | "
                + "\(f(mirror, 2)) s (\(c.pushCheckouts.map { f($0, 2) }.joined(separator: ", "))) | "
                + "\(f(Spread(c.copyCheckouts).median, 2)) s (\(c.copyCheckouts.map { f($0, 2) }.joined(separator: ", "))) | "
                + "\(f(Spread(c.mirrorShallowCheckouts).median, 2)) s (\(c.mirrorShallowCheckouts.map { f($0, 2) }.joined(separator: ", "))) | "
                + "\(f(c.freshClone / mirror, 1))× |\n"
        }
        let k = first.cache
        out += """

            ### Cache

            A step whose `cache:` (`key: bench-files-v1`, `paths: [files]`, branch `main`) holds
            \(k.files.formatted()) files of 100 B to 2 KiB (\(mib(Double(k.rawBytes)))) in 100 directories. The first run misses,
            copies them in, and the agent saves them after the commands (`tar -czf`, upload): archive
            \(k.archiveBytes.formatted()) bytes (from its `gantry: cache saved as … (N bytes compressed)` line). The next runs
            hit: resolve, download with the digest check, `tar -xzf` into the work dir, before the first command
            (checked: `gantry: cache restored from bench-files-v1`, and the step counts the files).

            | run | restore (each) | median | per file |
            |---|---|---|---|

            """
        for run in runs {
            let median = Spread(run.cache.restores).median
            out += "| \(run.index) | \(run.cache.restores.map { f($0, 3) + " s" }.joined(separator: ", ")) | \(f(median, 3)) s | "
                + "\(f(median / Double(run.cache.files) * 1e6, 1)) µs |\n"
        }
        out += "\n"
        return out
    }
}
