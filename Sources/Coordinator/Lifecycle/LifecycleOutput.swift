import Foundation
import GantryProtocol
import Logging

/// Something the `CoordinatorCore` actor must do because of a lifecycle event, after the
/// turn's `StoreBatch` committed.
public enum LifecycleAction: Sendable, Equatable {
    /// Send a frame to the agent's current connection.
    case send(Gantry_V1_Envelope, to: String)
    /// Close the agent's connection: it was declared lost.
    case closeConnection(agent: String)
    /// The job's state or log changed: wake whoever follows it.
    case notify(job: String)
    /// The queue, a lease or an agent changed, so the demand scalers see may have.
    case demandChanged
    /// A job waited this long in the queue before its lease (for `/metrics`).
    case queueWait(seconds: Double, selector: [String: String])
    /// A fact worth a log line. The state machine decides what happened; the actor owns
    /// the logger.
    case log(Logger.Level, String, Logger.Metadata)
}

/// What one lifecycle event produced: the writes to commit in one transaction, then the
/// actions to carry out, in order. Nothing in `actions` may happen before `writes` are
/// durable: that is what makes an acknowledgement a promise.
public struct LifecycleOutput: Sendable, Equatable {
    public var writes = StoreBatch()
    public var actions: [LifecycleAction] = []

    public init() {}

    mutating func write(_ write: StoreWrite) { writes.append(write) }
    mutating func send(_ envelope: Gantry_V1_Envelope, to agent: String) { actions.append(.send(envelope, to: agent)) }
    mutating func notify(_ job: String) { actions.append(.notify(job: job)) }
    mutating func log(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata = [:]) {
        actions.append(.log(level, message, metadata))
    }

    /// The frames sent to `agent`, in order (for tests and the actor's fast path).
    public func frames(to agent: String) -> [Gantry_V1_Envelope] {
        actions.compactMap {
            if case .send(let envelope, let target) = $0, target == agent { return envelope }
            return nil
        }
    }
}
