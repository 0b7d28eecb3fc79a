/// Starts and stops agent slots for the `Autoscaler`. Slot `n` runs the agent whose id is
/// `<enrolled name>/<slot prefix><n>`; that is how the scaler matches the coordinator's
/// view of its agents to its slots.
///
/// `stop` is only ever called for a slot the coordinator has already drained, and it
/// must stop gracefully (SIGTERM, which an agent treats as "drain"): a stop that races a
/// job can therefore delay, never kill, that job.
public protocol SlotProvider: Sendable {
    /// Slots already running when the scaler starts, to adopt rather than start again.
    func existingSlots() async throws -> [Int]
    func start(slot: Int) async throws
    func stop(slot: Int) async throws
    /// Exits of slot processes, for providers whose slots are gone when their process
    /// exits (`process`). Providers whose slots a supervisor restarts never yield.
    var exits: AsyncStream<SlotExit> { get }
    /// The scaler is stopping. `cancel` false: drain what this provider started and wait
    /// for it (SIGTERM); true: ask again, which cancels running jobs. Slots run by a
    /// supervisor are left alone: they are services in their own right.
    func shutdown(cancel: Bool) async
}

public struct SlotExit: Sendable, Equatable {
    public var slot: Int
    public var pid: Int32
    /// "exited 0", "killed by signal 9", ...
    public var status: String
    public var success: Bool

    public init(slot: Int, pid: Int32, status: String, success: Bool) {
        self.slot = slot
        self.pid = pid
        self.status = status
        self.success = success
    }
}

public enum SlotProviderError: Error, CustomStringConvertible {
    case commandFailed(command: String, status: String, output: String)

    public var description: String {
        switch self {
        case .commandFailed(let command, let status, let output):
            return "`\(command)` \(status)" + (output.isEmpty ? "" : ": \(output)")
        }
    }
}
