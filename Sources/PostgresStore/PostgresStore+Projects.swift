import Foundation
import GRDB
import GantryCoordinator

/// Projects and their webhook deliveries, in a database several coordinators share.
extension PostgresStore: ProjectStore {
    /// One statement: two coordinators creating the same project both try the insert and
    /// the primary key lets exactly one in, where a look-then-insert could let both pass
    /// the look.
    public func insertProject(_ project: StoredProject) throws -> Bool {
        try pool.write { db in try await db.insert(project, "ON CONFLICT (name) DO NOTHING") == 1 }
    }

    public func project(named name: String) throws -> StoredProject? {
        try pool.read { db in try await db.fetchOne(StoredProject.self, "SELECT * FROM projects WHERE name = ?", .values(name)) }
    }

    public func projects() throws -> [StoredProject] {
        try pool.read { db in try await db.fetchAll(StoredProject.self, "SELECT * FROM projects ORDER BY name LIMIT 1000") }
    }

    public func deleteProject(named name: String) throws -> Bool {
        try pool.write { db in
            try await db.execute("DELETE FROM webhook_deliveries WHERE project = ?", .values(name))
            return try await db.execute("DELETE FROM projects WHERE name = ?", .values(name)) > 0
        }
    }

    /// How old a delivery recorded by another process, still without a pipeline, must be
    /// before this store takes it over. SQLite has one coordinator, so another owner there
    /// is a process that died; here it may be a live coordinator in the middle of starting
    /// the pipeline (a submission takes well under a second), and taking that over would
    /// start the delivery twice.
    public static let deliveryTakeoverAge: TimeInterval = 120

    /// Safe with several coordinators because every decision is one atomic statement:
    ///
    /// - recording is `INSERT … ON CONFLICT DO NOTHING` against both unique keys (the
    ///   delivery id and the body's sha256), so of two coordinators receiving the same
    ///   delivery (or its copy under another id) exactly one records it; the other waits
    ///   for the first's insert to commit and then sees it as a conflict.
    /// - taking over an orphan is a compare-and-set on the owner this call read, on
    ///   `pipeline_id IS NULL` and on its age (`deliveryTakeoverAge`): of two coordinators
    ///   taking over the same delivery, the second's `UPDATE` waits for the first's row
    ///   lock, re-reads the row, finds another owner and changes nothing, and the call
    ///   looks again (and now finds it fresh: a duplicate).
    ///
    /// A row that changes between the look and the write (forgotten, taken over, started)
    /// makes the call start over, so it always answers from one consistent row.
    ///
    /// Unlike SQLite, a delivery another process recorded less than
    /// `deliveryTakeoverAge` before this one is a duplicate, not taken over.
    public func recordDelivery(_ delivery: StoredDelivery) throws -> DeliveryRecord {
        try pool.write { db in
            for _ in 0..<20 {
                if try await db.insert(delivery, "ON CONFLICT DO NOTHING") == 1 { return .recorded(delivery.deliveryId) }
                var existing = try await db.fetchOne(
                    StoredDelivery.self, "SELECT * FROM webhook_deliveries WHERE project = ? AND delivery_id = ?",
                    .values(delivery.project, delivery.deliveryId))
                if existing == nil {
                    existing = try await db.fetchOne(
                        StoredDelivery.self, "SELECT * FROM webhook_deliveries WHERE project = ? AND body_sha256 = ? LIMIT 1",
                        .values(delivery.project, delivery.bodySha256))
                }
                // Forgotten since the insert conflicted: try the insert again.
                guard let existing else { continue }
                let orphanedBefore = delivery.receivedAt.addingTimeInterval(-Self.deliveryTakeoverAge)
                guard existing.pipelineId == nil, existing.owner != delivery.owner, existing.receivedAt <= orphanedBefore else {
                    return .duplicate(existing)
                }
                let taken = try await db.execute(
                    """
                    UPDATE webhook_deliveries SET owner = ?, received_at = ?
                    WHERE project = ? AND delivery_id = ? AND owner = ? AND pipeline_id IS NULL AND received_at <= ?
                    """,
                    .values(delivery.owner, delivery.receivedAt, existing.project, existing.deliveryId, existing.owner, orphanedBefore))
                if taken == 1 { return .recorded(existing.deliveryId) }
            }
            throw PostgresStoreError.rowNotFound(
                table: "webhook_deliveries", key: "\(delivery.project)/\(delivery.deliveryId) (it kept changing under other coordinators)")
        }
    }

    public func setDeliveryPipeline(project: String, deliveryID: String, pipelineID: String) throws {
        try pool.write { db in _ = try await db.execute(SQLiteStore.setDeliveryPipelineSQL, .values(pipelineID, project, deliveryID)) }
    }

    public func forgetDelivery(project: String, deliveryID: String) throws {
        try pool.write { db in
            _ = try await db.execute("DELETE FROM webhook_deliveries WHERE project = ? AND delivery_id = ?", .values(project, deliveryID))
        }
    }

    public func deliveries(project: String, ref: String, limit: Int) throws -> [StoredDelivery] {
        try pool.read { db in
            try await db.fetchAll(
                StoredDelivery.self,
                """
                SELECT * FROM webhook_deliveries WHERE project = ? AND ref = ? AND pipeline_id IS NOT NULL
                ORDER BY received_at DESC LIMIT ?
                """,
                .values(project, ref, limit))
        }
    }

    /// See `resealAll` for why this is safe while another coordinator edits projects.
    public func resealWebhookSecrets(_ reseal: (StoredProject) throws -> StoredProject) throws -> Int {
        try resealAll(StoredProject.self, key: "name", reseal)
    }
}
