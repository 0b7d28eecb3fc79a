import Foundation
import GRDB
import GantryCoordinator
import PostgresNIO

/// The leader lease (`LeadershipStore`) as one row of `gantry_leader`, its changes
/// announced with `NOTIFY gantry_leader` so standbys retarget at once.
extension PostgresStore: LeadershipStore {
    static let leaderChannel = "gantry_leader"

    /// Free or expired: taken with the next epoch. Ours and live: renewed, same epoch.
    /// Ours but expired: the next epoch too, because another coordinator may have led in
    /// between, and the keeper must then stop rather than act on a stale queue.
    static let claimSQL = """
        INSERT INTO gantry_leader AS l (id, holder, epoch, agent_address, http_address, expires_at)
        VALUES (1, ?1, 1, ?2, ?3, now() + make_interval(secs => ?4::double precision))
        ON CONFLICT (id) DO UPDATE SET
            epoch = CASE WHEN l.holder = excluded.holder AND l.expires_at > now() THEN l.epoch ELSE l.epoch + 1 END,
            holder = excluded.holder, agent_address = excluded.agent_address,
            http_address = excluded.http_address, expires_at = excluded.expires_at
        WHERE l.holder = excluded.holder OR l.expires_at <= now()
        RETURNING holder, epoch, agent_address, http_address, true AS live, xmax = 0 OR l.epoch <> ?5 AS changed
        """

    static let currentSQL = "SELECT holder, epoch, agent_address, http_address, expires_at > now() AS live FROM gantry_leader WHERE id = 1"

    public func claimLeadership(_ claim: LeadershipClaim) throws -> LeaderRecord {
        let seconds = Double(claim.ttl.components.seconds) + Double(claim.ttl.components.attoseconds) / 1e18
        let known = fence.withLock { $0?.epoch } ?? -1
        return try pool.write { db in
            let rows = try await db.rows(
                Self.claimSQL, .values(claim.holder, claim.agentAddress, claim.httpAddress, seconds, known))
            if let row = rows.first {
                let record = Self.record(row)
                if row["changed"] as Bool {
                    try await db.execute("SELECT pg_notify('\(Self.leaderChannel)', ?)", .values(String(record.epoch)))
                }
                return record
            }
            guard let current = try await db.rows(Self.currentSQL).first else {
                throw PostgresStoreError.rowNotFound(table: "gantry_leader", key: "1")
            }
            return Self.record(current)
        }
    }

    public func currentLeader() throws -> LeaderRecord? {
        try pool.read { db in try await db.rows(Self.currentSQL).first.map(Self.record) }
    }

    public func releaseLeadership(holder: String) throws {
        try pool.write { db in
            let released = try await db.execute(
                "UPDATE gantry_leader SET expires_at = now() - interval '1 second' WHERE id = 1 AND holder = ?", .values(holder))
            if released == 1 { try await db.execute("SELECT pg_notify('\(Self.leaderChannel)', 'released')") }
        }
    }

    public func waitForLeadershipChange(timeout: Duration) async {
        let client = pool.client
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await client.withConnection { connection in
                        try await connection.listen(on: Self.leaderChannel) { notifications in
                            for try await _ in notifications { return }
                        }
                    }
                } catch {
                    // No connection (the database restarting): wait out the timeout
                    // rather than return at once, so the caller's loop never spins.
                    try? await Task.sleep(for: timeout)
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    public func fenceCommits(_ fence: LeaderFence?) {
        self.fence.withLock { $0 = fence }
    }

    /// First statement of every lifecycle commit under a fence: the lease row, locked
    /// shared until the commit ends, so a standby's takeover (an UPDATE of that row) waits
    /// for this commit and then loads it; and if the lease is no longer ours, nothing of
    /// the batch is written.
    static func check(_ fence: LeaderFence, _ db: PostgresSession) async throws {
        let held = try await db.rows(
            "SELECT 1 AS held FROM gantry_leader WHERE id = 1 AND holder = ? AND epoch = ? AND expires_at > now() FOR SHARE",
            .values(fence.holder, fence.epoch))
        guard !held.isEmpty else { throw PostgresStoreError.notLeader(fence.holder, fence.epoch) }
    }

    static func record(_ row: Row) -> LeaderRecord {
        LeaderRecord(
            holder: row["holder"], epoch: row["epoch"], agentAddress: row["agent_address"], httpAddress: row["http_address"],
            live: row["live"])
    }
}
