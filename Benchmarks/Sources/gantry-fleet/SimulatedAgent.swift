import BenchKit
import GantryProtocol
import NIOCore
import Synchronization

/// Counters shared by every simulated agent, read by the status printer.
final class FleetCounters: Sendable {
    let connecting = Atomic<Int>(0)
    let welcomed = Atomic<Int>(0)
    let heartbeatsSent = Atomic<Int>(0)
    let heartbeatAcks = Atomic<Int>(0)
    let leasesRefused = Atomic<Int>(0)
    let errorsReceived = Atomic<Int>(0)
    let connectFailures = Atomic<Int>(0)
    let closed = Atomic<Int>(0)
    let firstError = Mutex<String?>(nil)

    func record(error text: String) {
        firstError.withLock { if $0 == nil { $0 = text } }
    }

    var statusLine: String {
        "status connecting=\(connecting.load(ordering: .relaxed)) welcomed=\(welcomed.load(ordering: .relaxed))"
            + " heartbeats=\(heartbeatsSent.load(ordering: .relaxed)) acks=\(heartbeatAcks.load(ordering: .relaxed))"
            + " leases_refused=\(leasesRefused.load(ordering: .relaxed)) errors=\(errorsReceived.load(ordering: .relaxed))"
            + " connect_failures=\(connectFailures.load(ordering: .relaxed)) closed=\(closed.load(ordering: .relaxed))"
    }
}

/// One simulated agent on one connection: the protocol as `gantry-agent` speaks it while
/// idle, and nothing more.
///
/// On activation it sends a normal agent `Hello` (versions 1 through this build's current,
/// its id, labels, capacity 1). On `Welcome` it sends `Ready{1}` and starts heartbeats at
/// the interval the `Welcome` announces, with a random phase so a fleet that connected in
/// a burst does not heartbeat in lockstep (real agents drift apart the same way). It never
/// runs a job: its labels are chosen so the benchmark's jobs do not select it, and a
/// `Lease` that reaches it anyway is refused (the coordinator re-queues the job).
final class SimulatedAgentHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Gantry_V1_Envelope
    typealias OutboundOut = Gantry_V1_Envelope

    let agentID: String
    let labels: [String: String]
    let counters: FleetCounters
    /// Completed on `Welcome`; failed if the connection ends or errs before it.
    let welcomed: EventLoopPromise<Void>
    private var heartbeats: RepeatedTask?
    private var isWelcomed = false
    private var promiseCompleted = false

    init(agentID: String, labels: [String: String], counters: FleetCounters, welcomed: EventLoopPromise<Void>) {
        self.agentID = agentID
        self.labels = labels
        self.counters = counters
        self.welcomed = welcomed
    }

    func channelActive(context: ChannelHandlerContext) {
        let hello = Gantry_V1_Envelope.with {
            $0.hello = .with {
                $0.minVersion = 1
                $0.maxVersion = ProtocolVersion.current
                $0.agentID = agentID
                $0.labels = labels
                $0.capacity = 1
                $0.hostname = "gantry-fleet"
                $0.agentVersion = "gantry-fleet"
            }
        }
        context.writeAndFlush(Self.wrapOutboundOut(hello), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        switch envelope.body {
        case .welcome(let welcome):
            guard !isWelcomed else { return }
            isWelcomed = true
            counters.welcomed.add(1, ordering: .relaxed)
            completePromise(nil)
            context.writeAndFlush(Self.wrapOutboundOut(.with { $0.ready = .with { $0.slots = 1 } }), promise: nil)
            startHeartbeats(context: context, intervalMilliseconds: Int64(max(welcome.heartbeatIntervalMs, 100)))
        case .heartbeatAck:
            counters.heartbeatAcks.add(1, ordering: .relaxed)
        case .lease(let lease):
            counters.leasesRefused.add(1, ordering: .relaxed)
            let refusal = Gantry_V1_Envelope.with {
                $0.leaseAck = .with {
                    $0.jobID = lease.jobID
                    $0.attempt = lease.attempt
                    $0.accepted = false
                    $0.reason = "simulated agent (gantry-fleet) runs no jobs"
                }
            }
            context.writeAndFlush(Self.wrapOutboundOut(refusal), promise: nil)
        case .error(let error):
            counters.errorsReceived.add(1, ordering: .relaxed)
            counters.record(error: "\(agentID): \(error.code) \(error.message)")
        default:
            break
        }
    }

    private func startHeartbeats(context: ChannelHandlerContext, intervalMilliseconds: Int64) {
        let channel = context.channel
        let counters = self.counters
        let phase = Int64.random(in: 0..<intervalMilliseconds)
        heartbeats = context.eventLoop.scheduleRepeatedTask(
            initialDelay: .milliseconds(phase), delay: .milliseconds(intervalMilliseconds)
        ) { _ in
            let heartbeat = Gantry_V1_Envelope.with {
                $0.heartbeat = .with { $0.sentAtUnixMs = UInt64(realtimeMilliseconds()) }
            }
            counters.heartbeatsSent.add(1, ordering: .relaxed)
            channel.writeAndFlush(heartbeat, promise: nil)
        }
    }

    private func completePromise(_ error: (any Error)?) {
        guard !promiseCompleted else { return }
        promiseCompleted = true
        if let error { welcomed.fail(error) } else { welcomed.succeed() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        heartbeats?.cancel()
        heartbeats = nil
        counters.closed.add(1, ordering: .relaxed)
        completePromise(FleetError("connection closed before Welcome"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        counters.record(error: "\(agentID): \(error)")
        completePromise(error)
        context.close(promise: nil)
    }
}

struct FleetError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
