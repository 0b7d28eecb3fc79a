import Foundation
import GantryProtocol
import GantryServices
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// One coordinator of several sharing a database: a standby that relays its ports to the
/// leader until the lease is free, then the leader itself (`LeadershipStore`).
///
/// Every member starts as a standby so its ports are bound (and concrete, with port 0)
/// before it bids: the lease row then names addresses the others can relay to. A member
/// that wins closes its relays and starts `CoordinatorServer` on the same ports, which
/// loads the queue from the database as a restarted coordinator does; agents that were
/// connected to the old leader reconnect, through any member, and resume their jobs.
public struct ClusterMember: Sendable {
    public struct Settings: Sendable {
        /// This process's name in the lease row: host, pid and a random suffix.
        public var holder: String
        /// The host the other coordinators reach this one at (`serve --cluster-address`).
        public var advertisedHost: String
        /// How long a lease lasts without renewal: a dead leader is replaced after at most this.
        public var ttl: Duration

        public init(holder: String, advertisedHost: String, ttl: Duration) {
            self.holder = holder
            self.advertisedHost = advertisedHost
            self.ttl = ttl
        }

        public static func defaultHolder() -> String {
            let host = ProcessInfo.processInfo.hostName
            return "\(host):\(getpid()):\(UInt32.random(in: 0...UInt32.max) % 100_000)"
        }
    }

    let options: CoordinatorServer.Options
    let settings: Settings
    let leadership: any LeadershipStore
    let logger: Logger

    public init(options: CoordinatorServer.Options, settings: Settings, leadership: any LeadershipStore, logger: Logger) {
        self.options = options
        self.settings = settings
        self.leadership = leadership
        self.logger = logger
    }

    /// Runs until SIGTERM (as standby or leader); throws `LeadershipLost` if this member
    /// led and lost the lease.
    public func run(onListening: @escaping @Sendable (_ agents: String, _ http: String) -> Void = { _, _ in }) async throws {
        let standby = Standby(options: options, settings: settings, leadership: leadership, logger: logger)
        // Winning the lease ends the standby, and with it this group, without an error.
        let group = TwoSignalServiceGroup(
            services: [.init(service: standby, successTerminationBehavior: .gracefullyShutdownGroup)], logger: logger)
        standby.onListening = onListening
        try await group.run()
        guard let promotion = standby.promotion else { return }
        var options = self.options
        options.agentPort = promotion.agentPort
        options.httpPort = promotion.httpPort
        let claim = promotion.claim
        leadership.fenceCommits(LeaderFence(holder: claim.holder, epoch: promotion.epoch))
        options.leadershipKeeper = LeadershipKeeper(store: leadership, claim: claim, epoch: promotion.epoch, logger: logger)
        logger.notice("leading the cluster", metadata: ["epoch": "\(promotion.epoch)", "holder": "\(claim.holder)"])
        try await CoordinatorServer(options: options, logger: logger).run(onListening: onListening)
    }
}

/// What a standby hands over when it won the lease.
struct Promotion: Sendable {
    var claim: LeadershipClaim
    var epoch: Int64
    var agentPort: Int
    var httpPort: Int
}

/// The standby's service: relays both ports to the leader and bids for the lease each
/// time it may be free. Ends when it won (with `promotion` set) or at a graceful stop.
final class Standby: Service, @unchecked Sendable {
    let options: CoordinatorServer.Options
    let settings: ClusterMember.Settings
    let leadership: any LeadershipStore
    let logger: Logger
    // Written before `run` starts or by `run` itself, read after it returned.
    var onListening: @Sendable (String, String) -> Void = { _, _ in }
    private(set) var promotion: Promotion?
    private let leader = LeaderBox()

    init(options: CoordinatorServer.Options, settings: ClusterMember.Settings, leadership: any LeadershipStore, logger: Logger) {
        self.options = options
        self.settings = settings
        self.leadership = leadership
        self.logger = logger
    }

    func run() async throws {
        let leader = self.leader
        let agents = RelayServer(name: "agents", target: { leader.get()?.agents }, logger: logger)
        let http = RelayServer(name: "http", target: { leader.get()?.http }, logger: logger)
        let agentAddress = try await agents.start(host: options.agentHost, port: options.agentPort)
        let httpAddress = try await http.start(host: options.httpHost, port: options.httpPort)
        let agentPort = agentAddress.port ?? options.agentPort
        let httpPort = httpAddress.port ?? options.httpPort
        let claim = LeadershipClaim(
            holder: settings.holder,
            agentAddress: HostPort(host: settings.advertisedHost, port: agentPort).description,
            httpAddress: HostPort(host: settings.advertisedHost, port: httpPort).description, ttl: settings.ttl)
        // Announced (stdout, systemd's READY=1) only once this member knows it stands by:
        // a member that wins at once is announced by its server, after the relays gave
        // way, so nobody is told "listening" in the gap between the two.
        let notifier = SystemdNotifier()
        var announced = false
        var seen: LeaderRecord?
        var delay = Duration.milliseconds(100)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // A standby has no core for the watchdog to check: it is alive while this loop runs.
            _ = notifier.notify("WATCHDOG=1")
            let record: LeaderRecord
            do {
                record = try leadership.claimLeadership(claim)
                delay = .milliseconds(100)
            } catch {
                logger.warning("cannot reach the database to bid for the lease; retrying", metadata: ["error": "\(error)", "in": "\(delay)"])
                let wait = delay
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                delay = min(delay * 2, .seconds(5))
                continue
            }
            if record.holder == claim.holder {
                await agents.stop()
                await http.stop()
                promotion = Promotion(claim: claim, epoch: record.epoch, agentPort: agentPort, httpPort: httpPort)
                return
            }
            if !announced {
                announced = true
                onListening(CoordinatorServer.format(agentAddress), CoordinatorServer.format(httpAddress))
                _ = notifier.notify("READY=1\nSTATUS=standby: relaying to \(record.holder)")
            }
            if record != seen {
                if seen?.holder != record.holder || seen?.epoch != record.epoch {
                    logger.info("relaying to the leader", metadata: ["leader": "\(record.holder)", "agents": "\(record.agentAddress)", "http": "\(record.httpAddress)"])
                    leader.set(record)
                    // Clients relayed to the previous leader reconnect to this one.
                    agents.closeAll()
                    http.closeAll()
                }
                seen = record
            }
            // Woken by the leader's notification when the lease changes hands, else
            // polled a few times per TTL: a leader killed with -9 sends no notice.
            await cancelWhenGracefulShutdown { [leadership, settings] in
                await leadership.waitForLeadershipChange(timeout: settings.ttl / 4)
            }
        }
        await agents.stop()
        await http.stop()
    }
}

/// The leader's addresses as the relays read them at each accept.
final class LeaderBox: Sendable {
    private let value = Mutex<(agents: HostPort, http: HostPort)?>(nil)

    func set(_ record: LeaderRecord) {
        let agents = try? HostPort(parsing: record.agentAddress)
        let http = try? HostPort(parsing: record.httpAddress)
        value.withLock { $0 = agents.flatMap { a in http.map { (a, $0) } } }
    }

    func get() -> (agents: HostPort, http: HostPort)? { value.withLock { $0 } }
}
