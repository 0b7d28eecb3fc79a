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

enum ProviderKind: String, ExpressibleByArgument, CaseIterable {
    case process, systemd, command
}

struct Scale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run agent slots on demand: start them when jobs queue, drain idle ones after a cool-down.",
        discussion: """
            The coordinator pushes the demand (queued + running jobs these labels can run) over the agent \
            protocol, so scaling out follows a queued job within milliseconds. Scale-in only ever drains idle \
            agents: the coordinator checks idleness and stops leasing to the agent in one step. SIGTERM stops \
            scaling and drains the slots the process provider started; a second SIGTERM cancels their jobs.
            """)

    @Option(help: "State directory written by `enroll`.") var state: String
    @Option(help: "Coordinator address HOST:PORT, or several separated by commas (default: the one enrolled with); passed on to the agents.")
    var coordinator: String?
    @Option(help: "Labels of the agents this scaler runs, k=v,k=v; demand counts jobs whose selector they satisfy.")
    var labels: String = ""
    @Option(help: "Slots kept even with no demand.") var min: Int = 0
    @Option(help: "Slots never exceeded.") var max: Int
    @Option(help: "Seconds demand must stay below the slot count before idle slots are drained.")
    var cooldown: Double = 60
    @Option(help: "How slots are run: \(ProviderKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var provider: ProviderKind = .process
    @Option(help: "Slot n's agent runs as <enrolled name>/<slot-prefix>n (default: 'scale-' for process, '' otherwise).")
    var slotPrefix: String?
    @Option(help: "This scaler's id is <enrolled name>/<name>; run one scaler per name.") var name: String = "scaler"

    @Option(help: "process: work root for the agents' work dirs.") var workRoot: String?
    @Option(help: "process: the gantry-agent binary (default: this executable).") var agentBinary: String?
    @Option(help: "process: an extra `gantry-agent run` argument, repeatable (e.g. --agent-arg=--no-cgroups).")
    var agentArg: [String] = []
    @Option(help: "systemd: the agent template's name up to '@'.") var unitPrefix: String = "gantry-agent@"
    @Option(help: "systemd: the systemctl to run.") var systemctl: String = "systemctl"
    @Option(help: "command: a script called as `SCRIPT start N`, `SCRIPT stop N`, `SCRIPT list`.")
    var command: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: Logger.Level = .info

    func validate() throws {
        guard min >= 0 else { throw ValidationError("--min must be 0 or more") }
        guard (1...1000).contains(max) else { throw ValidationError("--max must be between 1 and 1000") }
        guard min <= max else { throw ValidationError("--min (\(min)) must not exceed --max (\(max))") }
        guard cooldown >= 0 else { throw ValidationError("--cooldown must be 0 or more seconds") }
        _ = try parsedLabels(labels)
        for text in coordinator?.split(separator: ",") ?? [] { _ = try address(String(text), option: "--coordinator") }
        if let problem = AgentID.nameProblem(name) { throw ValidationError("--name: '\(name)' \(problem)") }
        if let slotPrefix, let problem = AgentID.nameProblem(slotPrefix + "\(max)") {
            throw ValidationError("--slot-prefix: the slots would be named '\(slotPrefix)1' to '\(slotPrefix)\(max)', and such a slot \(problem)")
        }
        switch provider {
        case .process:
            guard workRoot != nil else { throw ValidationError("--provider process needs --work-root") }
        case .command:
            guard command != nil else { throw ValidationError("--provider command needs --command SCRIPT") }
        case .systemd:
            break
        }
    }

    func run() async throws {
        bootstrapLogging(logLevel)
        let directory = AgentStateDirectory(path: state)
        let metadata = try directory.readMetadata()
        let identity = try directory.tlsConfiguration()
        let prefix = slotPrefix ?? (provider == .process ? "scale-" : "")
        let agentIDPrefix = "\(metadata.name)/\(prefix)"
        let scalerID = try AgentID(name: metadata.name, slot: name)
        var logger = Logger(label: "gantry-scaler")
        logger[metadataKey: "scaler"] = "\(scalerID)"
        let slots: any SlotProvider
        switch provider {
        case .process:
            var arguments = ["--state", state, "--work-root", workRoot ?? "", "--labels", labels, "--log-level", "\(logLevel)"]
            if let coordinator { arguments += ["--coordinator", coordinator] }
            slots = ProcessSlotProvider(
                options: .init(
                    agentBinary: agentBinary ?? Self.currentExecutable(), agentArguments: arguments + agentArg,
                    slotPrefix: prefix),
                logger: logger)
        case .systemd:
            slots = SystemdSlotProvider(systemctl: systemctl, unitPrefix: unitPrefix, logger: logger)
        case .command:
            slots = CommandSlotProvider(script: command ?? "", agentIDPrefix: agentIDPrefix, labels: labels, logger: logger)
        }
        let addresses = try (coordinator ?? metadata.coordinator).split(separator: ",").map {
            try address(String($0), option: coordinator == nil ? "agent.json" : "--coordinator")
        }
        guard let first = addresses.first else { throw ValidationError("--coordinator: no address") }
        var scalerOptions = Autoscaler.Options(
            coordinator: first, scalerID: scalerID.description, labels: try parsedLabels(labels), agentIDPrefix: agentIDPrefix,
            policy: .init(minimum: min, maximum: max, cooldown: .milliseconds(Int(cooldown * 1000))))
        scalerOptions.alternateCoordinators = Array(addresses.dropFirst())
        let scaler = Autoscaler(
            options: scalerOptions,
            tls: try GantryTLS.agent(certificate: identity.certificate, privateKey: identity.privateKey, ca: identity.ca),
            reloadTLS: { try directory.agentTLS() }, provider: slots, logger: logger)
        // First SIGTERM/SIGINT: stop scaling and drain the slots; the next: cancel their jobs.
        try await TwoSignalServiceGroup(
            services: [
                .init(service: ScalerService(scaler: scaler, logger: logger), successTerminationBehavior: .gracefullyShutdownGroup)
            ],
            logger: logger
        ).run()
    }

    static func currentExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
