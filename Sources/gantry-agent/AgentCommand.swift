import ArgumentParser
import GantryAgent
import GantryProtocol
import GantryServices
import Logging
import ServiceLifecycle

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

/// `gantry-agent`: argument parsing and wiring only; the work is in GantryAgent.
@main
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gantry-agent",
        abstract: "The Gantry agent: runs jobs leased by a coordinator.",
        subcommands: [Enroll.self, Run.self, Scale.self])
}

struct Enroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Get a client certificate from the coordinator (once per host).")

    @Option(help: "Coordinator agent address, HOST:PORT.") var coordinator: String
    @Option(help: "Join token from `gantry-coordinator join-info`.") var token: String
    @Option(help: "CA fingerprint (sha256:...) from `gantry-coordinator join-info`.") var caFingerprint: String
    @Option(help: "State directory for the agent's identity.") var state: String
    @Option(help: "Name of this host's agents, 1-64 of A-Z a-z 0-9 . _ - (default: the short host name).") var name: String?

    /// The name to enroll under: `--name`, or the host name up to its first dot.
    var enrolledName: String {
        name ?? ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "agent"
    }

    func validate() throws {
        _ = try address(coordinator, option: "--coordinator")
        if let problem = AgentID.nameProblem(enrolledName) {
            throw ValidationError(
                "--name: '\(enrolledName)' \(problem)" + (name == nil ? " (it is the host name: pass --name)" : ""))
        }
        guard caFingerprint.hasPrefix("sha256:") else {
            throw ValidationError("--ca-fingerprint must look like sha256:<64 hex digits>, as join-info prints it")
        }
    }

    func run() async throws {
        let address = try address(coordinator, option: "--coordinator")
        let name = enrolledName
        try await Enroller(
            coordinator: address, token: token, caFingerprint: caFingerprint, name: name,
            state: AgentStateDirectory(path: state)
        ).enroll()
        print(
            "Enrolled as '\(name)'. Start it with: gantry-agent run --state \(state) --work-root /var/lib/gantry-agent-work "
                + "--step-user gantry-step-{slot} --slot 1 (or systemctl enable --now gantry-agent@1)")
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to the coordinator and run jobs. SIGTERM drains (finish the job, then exit); a second SIGTERM cancels it.")

    @Option(help: "State directory written by `enroll`.") var state: String
    @Option(
        help: ArgumentHelp(
            "Coordinator address HOST:PORT (default: the one enrolled with).",
            discussion: "Repeat it (or separate with commas) for coordinators sharing one database: the agent moves to the next when a connection ends."))
    var coordinator: [String] = []
    @Option(help: "Directory under which each attempt gets a fresh work dir.") var workRoot: String

    /// `--coordinator` values, commas split, in the order given.
    var coordinatorList: [String] {
        coordinator.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
    }
    @Option(help: "Labels jobs can select on, k=v,k=v.") var labels: String = ""
    @Option(help: "Slot name; the agent id is <enrolled name>/<slot> (default: pid-<pid>).") var slot: String?
    @Option(help: "Jobs run at once.") var capacity: Int = 1
    @Option(help: "Heartbeat interval in seconds (default: what the coordinator announces).")
    var heartbeatInterval: Double?
    @Option(help: "Unacknowledged log a job may spool on disk, in MiB; past it the step's output is not read (it blocks) until the coordinator catches up.")
    var maxSpoolMib: Int = 256
    @Flag(help: "Take exactly one job, then exit 0 whatever its result.") var oneShot = false
    @Flag(help: "Keep work dirs after jobs (for debugging).") var keepWorkDirs = false
    @Flag(help: "Do not run jobs in per-job cgroups even where possible.") var noCgroups = false
    @Option(
        help: "Directory of this host's git mirrors, shared by every slot (default: STATE/git-mirrors). Only the agent's user may read it.")
    var gitMirrors: String?
    @Option(
        help: ArgumentHelp(
            "At start, remove git mirrors no checkout has used for this many days (0-3650; 0 keeps them).", valueName: "days"))
    var gitMirrorsMaxIdle: Int = 30
    @Option(
        help: ArgumentHelp(
            "Checked-out work trees kept per repository beside its mirror and mounted (overlayfs) as a job's checkout (0-64; 0: every checkout copies the history).",
            discussion: "Best at the number of slots on the host. Needs an agent with CAP_SYS_ADMIN (root); without it checkouts copy the history.",
            valueName: "count"))
    var gitWorkTrees: Int = 2
    @Flag(
        help: "Accept file:// and local-path repositories (never submodules). Off by default: they read any repository this user can read.")
    var gitAllowFileUrls = false
    @Option(
        help: ArgumentHelp(
            "Run steps as this unprivileged user; '{slot}' is replaced by the slot name (one user per slot keeps slots apart).",
            discussion: "Needs an agent running as root or with CAP_SETUID and CAP_SETGID. Without it steps run as the agent's own user and can read its key (the agent warns at start; see docs/operations.md).",
            valueName: "user"))
    var stepUser: String?
    @Option(
        help: ArgumentHelp(
            "Free space below which the agent takes no new jobs: BYTES (suffixes K, M, G, T: powers of 1024) or PERCENT% of the filesystem; 0 disables (default: 2G or 5%, whichever is smaller).",
            discussion: "Checked on the work root's filesystem and the state directory's, before saying Ready and every 10 seconds. Below it the agent stays connected, `gantry agents` shows why, and running jobs finish.",
            valueName: "space"))
    var minFreeSpace: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: Logger.Level = .info

    func validate() throws {
        guard (1...64).contains(capacity) else { throw ValidationError("--capacity must be between 1 and 64") }
        guard maxSpoolMib >= 1 else { throw ValidationError("--max-spool-mib must be at least 1") }
        _ = try parsedLabels(labels)
        for text in coordinatorList { _ = try address(text, option: "--coordinator") }
        if let slot, let problem = AgentID.nameProblem(slot) { throw ValidationError("--slot: '\(slot)' \(problem)") }
        guard (0...3650).contains(gitMirrorsMaxIdle) else {
            throw ValidationError("--git-mirrors-max-idle: \(gitMirrorsMaxIdle) is not a number of days from 0 to 3650")
        }
        guard (0...GitMirrors.maximumWorkTreesPerRepository).contains(gitWorkTrees) else {
            throw ValidationError("--git-work-trees: \(gitWorkTrees) is not a count from 0 to \(GitMirrors.maximumWorkTreesPerRepository)")
        }
        if let minFreeSpace, FreeSpaceFloor(parsing: minFreeSpace) == nil {
            throw ValidationError("--min-free-space: '\(minFreeSpace)' is neither BYTES (like 2G or 2147483648) nor PERCENT% (like 5%), nor 0")
        }
        if let heartbeatInterval, heartbeatInterval < 0.05 {
            throw ValidationError("--heartbeat-interval must be at least 0.05 seconds")
        }
    }

    func run() async throws {
        bootstrapLogging(logLevel)
        let directory = AgentStateDirectory(path: state)
        let metadata = try directory.readMetadata()
        let identity = try directory.tlsConfiguration()
        let slotName = slot ?? "pid-\(getpid())"
        let agentID = try AgentID(name: metadata.name, slot: slotName)
        var logger = Logger(label: "gantry-agent")
        logger[metadataKey: "agent"] = "\(agentID)"
        let options = AgentRuntime.Options(
            coordinator: try address(coordinatorList.first ?? metadata.coordinator, option: coordinatorList.isEmpty ? "agent.json" : "--coordinator"),
            agentID: agentID.description, labels: try parsedLabels(labels), capacity: capacity, oneShot: oneShot,
            workRoot: workRoot,
            // A slot holds no '/', so `<name>_<slot>` names one slot only.
            spoolDirectory: directory.spool + "/" + agentID.name + "_" + slotName,
            keepWorkDirs: keepWorkDirs, heartbeatInterval: heartbeatInterval.map { .milliseconds(Int($0 * 1000)) },
            streamer: {
                var configuration = LogStreamer.Configuration()
                configuration.maximumSpooled = maxSpoolMib * 1024 * 1024
                return configuration
            }())
        var runtimeOptions = options
        runtimeOptions.alternateCoordinators = try coordinatorList.dropFirst().map { try address($0, option: "--coordinator") }
        runtimeOptions.useCgroups = !noCgroups
        runtimeOptions.stateDirectory = state
        runtimeOptions.minFreeSpace = minFreeSpace.flatMap(FreeSpaceFloor.init(parsing:)) ?? .standard
        runtimeOptions.gitMirrors = GitMirrors(directory: gitMirrors ?? state + "/git-mirrors", allowFileURLs: gitAllowFileUrls)
        runtimeOptions.gitMirrors?.maximumIdle = gitMirrorsMaxIdle == 0 ? nil : .seconds(gitMirrorsMaxIdle * 86_400)
        runtimeOptions.gitMirrors?.workTreesPerRepository = gitWorkTrees
        if let stepUser {
            runtimeOptions.stepUser = try StepUser.resolve(StepUser.name(pattern: stepUser, slot: slotName))
        }
        let runtime = AgentRuntime(
            options: runtimeOptions,
            tls: try GantryTLS.agent(certificate: identity.certificate, privateKey: identity.privateKey, ca: identity.ca),
            reloadTLS: { try directory.agentTLS() }, logger: logger)
        // First SIGTERM/SIGINT: drain; the next: cancel the running job. The agent also ends
        // by itself (one-shot, or drained by the coordinator), which ends the group.
        try await TwoSignalServiceGroup(
            services: [
                .init(service: AgentService(runtime: runtime, logger: logger), successTerminationBehavior: .gracefullyShutdownGroup)
            ],
            logger: logger
        ).run()
    }
}

/// `--labels`, by the one parser (`LabelSet`), as a command-line error.
func parsedLabels(_ text: String) throws -> [String: String] {
    switch LabelSet.parse(text) {
    case .success(let labels): return labels
    case .failure(let error): throw ValidationError("--labels: \(error)")
    }
}

/// A `HOST:PORT` from `option` (or the enrolled address), as a command-line error.
func address(_ text: String, option: String) throws -> HostPort {
    do {
        return try HostPort(parsing: text)
    } catch {
        throw ValidationError("\(option): \(error)")
    }
}

func bootstrapLogging(_ level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
