import Logging

/// Delegates slots to a user's script, for cloud VMs and instance groups:
///
///     SCRIPT start N    start the machine (or container) for slot N
///     SCRIPT stop N     stop it: only called after the coordinator drained its agent
///     SCRIPT list       print the slot numbers that exist, one per line (may be empty)
///
/// The script also gets `GANTRY_SLOT`, `GANTRY_AGENT_ID` (the id the slot's agent must
/// use, `<enrolled name>/<slot prefix>N`) and `GANTRY_LABELS`. A failing script fails that
/// one operation, logged with its output; the scaler retries on the next decision.
public struct CommandSlotProvider: SlotProvider {
    public var script: String
    public var agentIDPrefix: String
    public var labels: String
    let logger: Logger
    public let exits: AsyncStream<SlotExit> = AsyncStream { $0.finish() }

    public init(script: String, agentIDPrefix: String, labels: String, logger: Logger) {
        self.script = script
        self.agentIDPrefix = agentIDPrefix
        self.labels = labels
        self.logger = logger
    }

    func environment(_ slot: Int) -> [String: String] {
        ["GANTRY_SLOT": "\(slot)", "GANTRY_AGENT_ID": "\(agentIDPrefix)\(slot)", "GANTRY_LABELS": labels]
    }

    public func existingSlots() async throws -> [Int] {
        let listing = try await CommandRunner.run(script, ["list"], environment: ["GANTRY_LABELS": labels])
        return listing.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }.sorted()
    }

    public func start(slot: Int) async throws {
        _ = try await CommandRunner.run(script, ["start", "\(slot)"], environment: environment(slot))
        logger.info("slot started", metadata: ["slot": "\(slot)", "script": "\(script)"])
    }

    public func stop(slot: Int) async throws {
        _ = try await CommandRunner.run(script, ["stop", "\(slot)"], environment: environment(slot))
        logger.info("stopped drained slot", metadata: ["slot": "\(slot)", "script": "\(script)"])
    }

    public func shutdown(cancel: Bool) async {}
}
