import Logging
import Subprocess
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs each slot as a local `gantry-agent run --one-shot` child process: the provider for
/// simple hosts and for tests. A one-shot agent exits after its job, so every job gets a
/// fresh process and work dir; the exit is reported and the scaler decides whether the
/// slot comes back.
///
/// Children share the scaler's stderr. They are signalled by pid only while this provider
/// has not yet seen them exit, so a recycled pid is never signalled.
public actor ProcessSlotProvider: SlotProvider {
    public struct Options: Sendable {
        /// The `gantry-agent` binary (default: the running executable).
        public var agentBinary: String
        /// `gantry-agent run` arguments shared by every slot (state, work root, labels, ...).
        public var agentArguments: [String]
        /// Slot `n` runs with `--slot <slotPrefix><n>`.
        public var slotPrefix: String

        public init(agentBinary: String, agentArguments: [String], slotPrefix: String) {
            self.agentBinary = agentBinary
            self.agentArguments = agentArguments
            self.slotPrefix = slotPrefix
        }
    }

    public let options: Options
    public nonisolated let exits: AsyncStream<SlotExit>
    private let exitContinuation: AsyncStream<SlotExit>.Continuation
    private let logger: Logger
    private var running: [Int: Int32] = [:]
    private var tasks: [Int: Task<Void, Never>] = [:]
    /// Set by `shutdown`: a slot still being spawned then is signalled as soon as its pid
    /// is known, and no new slot starts, so no child outlives the scaler.
    private var shuttingDown = false

    /// `start` after `shutdown` began.
    public struct ShuttingDown: Error, CustomStringConvertible {
        public var description: String { "the scaler is shutting down: no new slot starts" }
    }

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
        (exits, exitContinuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    public func existingSlots() -> [Int] { [] }

    public func start(slot: Int) async throws {
        guard !shuttingDown else { throw ShuttingDown() }
        let arguments = ["run"] + options.agentArguments + ["--slot", "\(options.slotPrefix)\(slot)", "--one-shot"]
        let binary = options.agentBinary
        let (started, startedContinuation) = AsyncStream.makeStream(of: Result<Int32, any Error>.self)
        tasks[slot] = Task {
            do {
                let result = try await Subprocess.run(
                    .path(FilePath(binary)), arguments: Arguments(arguments), environment: .inherit, input: .none,
                    output: .fileDescriptor(.standardError, closeAfterSpawningProcess: false),
                    error: .fileDescriptor(.standardError, closeAfterSpawningProcess: false)
                ) { execution in
                    let pid = execution.processIdentifier.value
                    self.spawned(slot: slot, pid: pid)
                    startedContinuation.yield(.success(pid))
                    startedContinuation.finish()
                }
                let (status, success): (String, Bool)
                switch result.terminationStatus {
                case .exited(let code): (status, success) = ("exited \(code)", code == 0)
                case .signaled(let signal): (status, success) = ("killed by signal \(signal)", false)
                }
                self.exited(slot: slot, pid: result.processIdentifier.value, status: status, success: success)
            } catch {
                // Never spawned: `start` throws and the scaler frees the slot.
                startedContinuation.yield(.failure(error))
                startedContinuation.finish()
            }
        }
        for await outcome in started {
            do {
                let pid = try outcome.get()
                logger.info("slot started", metadata: ["slot": "\(slot)", "pid": "\(pid)"])
            } catch {
                tasks.removeValue(forKey: slot)
                throw error
            }
        }
    }

    public func stop(slot: Int) {
        guard let pid = running[slot] else { return }
        logger.info("stopping drained slot", metadata: ["slot": "\(slot)", "pid": "\(pid)"])
        kill(pid, SIGTERM)
    }

    public func shutdown(cancel: Bool) async {
        shuttingDown = true
        for (slot, pid) in running {
            logger.info(cancel ? "cancelling slot" : "draining slot", metadata: ["slot": "\(slot)", "pid": "\(pid)"])
            kill(pid, SIGTERM)
        }
        if cancel { return }
        for task in tasks.values { await task.value }
    }

    private func spawned(slot: Int, pid: Int32) {
        running[slot] = pid
        // Spawned while `shutdown` ran: it did not see this pid, so signal it here; the
        // agent drains (an idle one exits) and `shutdown` waits for its task.
        if shuttingDown { kill(pid, SIGTERM) }
    }

    private func exited(slot: Int, pid: Int32, status: String, success: Bool) {
        running.removeValue(forKey: slot)
        tasks.removeValue(forKey: slot)
        logger.info("slot exited", metadata: ["slot": "\(slot)", "pid": "\(pid)", "status": "\(status)"])
        exitContinuation.yield(SlotExit(slot: slot, pid: pid, status: status, success: success))
    }
}
