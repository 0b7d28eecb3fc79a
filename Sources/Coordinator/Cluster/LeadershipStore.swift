import Foundation

/// Who runs the lifecycle when several coordinators share one database.
///
/// Exactly one coordinator, the leader, runs the core: the job lifecycle, dispatch, the
/// lost-agent sweep, schedules, notifications and retention, as a single coordinator does.
/// The others relay agents and API clients to it (`RelayServer`) and stand by. The leader
/// holds a lease row in the database, renews it well within its TTL, and stamps every
/// lifecycle commit with its epoch, which the database checks: a leader that lost the
/// lease (partitioned, paused, its renewals failing) can no longer commit anything, so two
/// coordinators never both decide about the same job. A standby takes the lease once it
/// expires and loads the queue from the database, exactly as a restarted coordinator does.
public protocol LeadershipStore: Sendable {
    /// Takes the lease if it is free or expired, renews it if `holder` has it; answers the
    /// lease as it stands afterwards (held by someone else when it was not free).
    func claimLeadership(_ claim: LeadershipClaim) throws -> LeaderRecord
    /// The lease as it stands, or nil if no coordinator ever held it.
    func currentLeader() throws -> LeaderRecord?
    /// Gives the lease up now (a graceful stop), so a standby need not wait for the TTL.
    func releaseLeadership(holder: String) throws
    /// Returns when the lease changes hands (a database notification) or `timeout` passed.
    func waitForLeadershipChange(timeout: Duration) async
    /// From now on, lifecycle commits succeed only while `fence` holds the lease; nil: no check.
    func fenceCommits(_ fence: LeaderFence?)
}

/// A coordinator's bid for the lease, with where the others reach it.
public struct LeadershipClaim: Sendable, Equatable {
    public var holder: String
    public var agentAddress: String
    public var httpAddress: String
    public var ttl: Duration

    public init(holder: String, agentAddress: String, httpAddress: String, ttl: Duration) {
        self.holder = holder
        self.agentAddress = agentAddress
        self.httpAddress = httpAddress
        self.ttl = ttl
    }
}

/// The lease row: who leads, which epoch (incremented on every change of hands), where to
/// reach them, and whether the lease is still within its TTL by the database's clock.
public struct LeaderRecord: Sendable, Equatable {
    public var holder: String
    public var epoch: Int64
    public var agentAddress: String
    public var httpAddress: String
    public var live: Bool

    public init(holder: String, epoch: Int64, agentAddress: String, httpAddress: String, live: Bool) {
        self.holder = holder
        self.epoch = epoch
        self.agentAddress = agentAddress
        self.httpAddress = httpAddress
        self.live = live
    }
}

/// What a commit proves it was made under.
public struct LeaderFence: Sendable, Equatable {
    public var holder: String
    public var epoch: Int64

    public init(holder: String, epoch: Int64) {
        self.holder = holder
        self.epoch = epoch
    }
}

/// The leader lost its lease; the process stops so it restarts as a standby (systemd's
/// `Restart=always`) and never acts on a queue another leader now owns.
public struct LeadershipLost: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
