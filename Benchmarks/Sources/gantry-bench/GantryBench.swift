import ArgumentParser
import BenchKit
import Dispatch
import Foundation

/// `gantry-bench`: runs the benchmark scenarios against the root package's release
/// binaries and writes docs/benchmarks.md. `scripts/benchmark` builds everything and runs
/// it; run it directly only with binaries you built the same way.
@main
struct GantryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gantry-bench",
        abstract: "Gantry's benchmark scenarios on 127.0.0.1 with the real release binaries; writes docs/benchmarks.md.")

    @Option(help: "Directory holding the release gantry-coordinator, gantry-agent and gantry.") var bin: String
    @Option(help: "The gantry-fleet load generator executable.") var fleet: String
    @Option(help: "Scratch directory for clusters and the generated log (default: a new one under /tmp, removed at the end).")
    var workDir: String?
    @Option(help: "Where to write the report (markdown).") var output: String
    @Option(help: "Output of the micro benchmarks (ordo-one, markdown) to include.") var microResults: String?
    @Option(help: "Why the micro benchmarks did not run, if they did not.") var microNote: String?
    @Option(help: "Comma-separated scenarios: footprint, dispatch, throughput, logs, fleet, history, transfers, dashboard, cluster.")
    var scenarios: String = "footprint,dispatch,throughput,logs,fleet,history,transfers,dashboard,cluster"
    @Option(
        help: "Where the transfers scenario's report goes (default: benchmarks-transfers.md next to --output). It has a file of its own so that running it alone never drops the other scenarios' figures from --output.")
    var transfersOutput: String?
    @Flag(help: "Small sizes and one run per scenario: a smoke run in a few minutes.") var quick = false
    @Option(help: "Runs per scenario (default 3, or 1 with --quick).") var runs: Int?
    @Option(help: "The command line to record in the report.") var commandLine: String = "scripts/benchmark"
    @Option(help: "`swift --version`, recorded in the report.") var swiftVersion: String = "unknown"
    @Option(help: "The Gantry commit measured, recorded in the report.") var commit: String = "unknown"
    @Option(help: "Notes on the builds (times), one per use, recorded in the report.") var buildNote: [String] = []

    static let knownScenarios = [
        "footprint", "dispatch", "throughput", "logs", "fleet", "history", "transfers", "dashboard", "cluster",
    ]

    /// The scenarios whose figures go into --output; `transfers`, `dashboard` and `cluster`
    /// write their own files.
    static let mainReportScenarios: Set<String> = ["footprint", "dispatch", "throughput", "logs", "fleet", "history"]

    var transfersReportPath: String {
        transfersOutput ?? ((output as NSString).deletingLastPathComponent + "/benchmarks-transfers.md")
    }

    func validate() throws {
        for name in selected where !Self.knownScenarios.contains(name) {
            throw ValidationError("unknown scenario '\(name)': use \(Self.knownScenarios.joined(separator: ", "))")
        }
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1") }
    }

    var selected: [String] {
        scenarios.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() async throws {
        let fileLimit = raiseOpenFileLimit()
        var ownsWorkDir = false
        let work: String
        if let workDir {
            work = workDir
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        } else {
            var template = Array("/tmp/gantry-bench.XXXXXX".utf8CString)
            guard let created = mkdtemp(&template) else { throw HarnessError("mkdtemp failed") }
            work = String(cString: created)
            ownsWorkDir = true
        }
        Interruption.install(removing: ownsWorkDir ? work : nil)
        ChildRegistry.shared.setPidFile(work + "/children.pids")
        defer {
            ChildRegistry.shared.stopAll()
            if ownsWorkDir { try? FileManager.default.removeItem(atPath: work) }
        }
        for name in ["gantry-coordinator", "gantry-agent", "gantry"] where !FileManager.default.isExecutableFile(atPath: bin + "/" + name) {
            throw ValidationError("\(bin)/\(name) is missing: build with `swift build -c release --static-swift-stdlib --scratch-path .build-release`")
        }
        let context = BenchContext(
            binaries: bin, fleetBinary: fleet, workDir: work, quick: quick, runs: runs ?? (quick ? 1 : 3))
        var results = Results(
            machine: Machine.current(swiftVersion: swiftVersion), commandLine: commandLine, commit: commit, quick: quick,
            runs: context.runs, openFileLimit: fileLimit, buildNotes: buildNote)
        results.loadAtStart = Machine.loadAverage()
        context.log("gantry-bench: \(context.runs) run(s) per scenario\(quick ? " (quick)" : ""); work dir \(work)")
        context.log("machine: \(results.machine.summary); load average \(results.loadAtStart)")

        if selected.contains("throughput") || selected.contains("dispatch") {
            let ceiling = MachineCeilings.shellSpawnsPerSecond(cores: results.machine.cores)
            results.spawnCeiling = ceiling
            context.log("machine ceiling: \(Int(ceiling)) spawns of `sh -c true` per second on \(results.machine.cores) cores")
        }
        for name in selected {
            let started = ContinuousClock.now
            context.log("== \(name)")
            do {
                switch name {
                case "footprint":
                    results.footprint = try await FootprintScenario(context: context).run()
                case "dispatch":
                    let scenario = DispatchScenario(context: context)
                    results.dispatchNoCgroups = try await scenario.run(cgroups: false)
                    results.dispatchCgroups = try await scenario.run(cgroups: true)
                case "throughput":
                    let scenario = ThroughputScenario(context: context)
                    results.throughput8 = try await scenario.run(agents: 8)
                    results.throughput32 = try await scenario.run(agents: 32)
                case "logs":
                    let scenario = LogScenario(context: context)
                    let file = try scenario.prepareFile()
                    let offline = try scenario.offlineCompression(of: file)
                    results.logOffline = offline
                    context.log(
                        "  \(offline.bytes / 1_000_000) MB log: offline deflate level 1 in 256 KiB chunks "
                            + "\(String(format: "%.2f", offline.ratio))× at \(String(format: "%.0f", offline.megabytesPerSecond)) MB/s (one core)")
                    results.logSingle = try await scenario.run(steps: 1, file: file)
                    results.logParallel = try await scenario.run(steps: scenario.parallelSteps, file: file)
                    unlink(file)
                case "fleet":
                    let scenario = FleetScenario(context: context)
                    for size in scenario.sizes { results.fleet[size] = try await scenario.run(size: size) }
                case "history":
                    results.history = try await HistoryScenario(context: context).run()
                case "transfers":
                    results.transfers = try await TransfersScenario(context: context).run()
                case "dashboard":
                    results.dashboard = try await DashboardScenario(context: context).run()
                case "cluster":
                    results.cluster = try await ClusterScenario(context: context).run()
                default:
                    break
                }
            } catch {
                context.log("!! \(name) failed: \(error)")
                results.failures[name] = "\(error)"
            }
            results.durations[name] = (ContinuousClock.now - started).seconds
        }
        results.loadAtEnd = Machine.loadAverage()
        if let microResults {
            results.micro = try? String(contentsOfFile: microResults, encoding: .utf8)
        }
        results.microNote = microNote
        let writer = ReportWriter(results: results, transfersReport: transfersReportPath)
        // A run of `transfers` alone leaves --output as it was (with the other scenarios'
        // figures); a run of the others leaves the transfers report as it was.
        if !Self.mainReportScenarios.isDisjoint(with: selected) {
            try writer.markdown().write(toFile: output, atomically: true, encoding: .utf8)
            context.log("wrote \(output)")
        }
        if selected.contains("dashboard") {
            let path = ((transfersReportPath as NSString).deletingLastPathComponent as NSString)
                .appendingPathComponent("benchmarks-dashboard.md")
            try writer.dashboardMarkdown().write(toFile: path, atomically: true, encoding: .utf8)
            context.log("wrote \(path)")
        }
        if selected.contains("cluster") {
            let path = ((transfersReportPath as NSString).deletingLastPathComponent as NSString)
                .appendingPathComponent("benchmarks-cluster.md")
            try writer.clusterMarkdown().write(toFile: path, atomically: true, encoding: .utf8)
            context.log("wrote \(path)")
        }
        if selected.contains("transfers") {
            try writer.transfersMarkdown().write(toFile: transfersReportPath, atomically: true, encoding: .utf8)
            context.log("wrote \(transfersReportPath)")
        }
        if !results.failures.isEmpty {
            throw HarnessError("scenarios failed: \(results.failures.keys.sorted().joined(separator: ", ")) (see \(output))")
        }
    }
}

/// What every scenario needs: where the binaries are, where to work, how big to go.
struct BenchContext: Sendable {
    let binaries: String
    let fleetBinary: String
    let workDir: String
    let quick: Bool
    let runs: Int

    /// Progress on stdout as the run goes (the report is written at the end).
    func log(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}

/// Ctrl-C or SIGTERM: stop every child by pid, remove the work dir if the harness made it,
/// and exit. (`scripts/benchmark` also traps and cleans up, in case this process dies.)
enum Interruption {
    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []

    static func install(removing directory: String?) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                FileHandle.standardError.write(Data("gantry-bench: interrupted; stopping the processes it started\n".utf8))
                ChildRegistry.shared.stopAll()
                if let directory { try? FileManager.default.removeItem(atPath: directory) }
                exit(130)
            }
            source.resume()
            sources.append(source)
        }
        signal(SIGPIPE, SIG_IGN)
    }
}
