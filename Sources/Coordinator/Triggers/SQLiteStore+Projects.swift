import Foundation
import GRDB

extension SQLiteStore: ProjectStore {
    /// The schema of Triggers/ (migration "v16: projects and webhooks").
    static func createProjectTables(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE projects (
                    name TEXT PRIMARY KEY NOT NULL,
                    repository TEXT NOT NULL,
                    pipeline_file TEXT NOT NULL,
                    branches TEXT NOT NULL,
                    tags TEXT NOT NULL,
                    cancel_superseded INTEGER NOT NULL DEFAULT 0,
                    run_as TEXT,
                    sealed_secret BLOB NOT NULL,
                    key_id TEXT NOT NULL,
                    created_by TEXT NOT NULL,
                    created_at DATETIME NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE webhook_deliveries (
                    project TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
                    delivery_id TEXT NOT NULL,
                    pipeline_id TEXT,
                    ref TEXT NOT NULL,
                    "commit" TEXT NOT NULL,
                    body_sha256 TEXT NOT NULL,
                    owner TEXT NOT NULL,
                    received_at DATETIME NOT NULL,
                    PRIMARY KEY (project, delivery_id)
                ) WITHOUT ROWID;
                CREATE INDEX webhook_deliveries_by_pipeline ON webhook_deliveries(pipeline_id);
                CREATE INDEX webhook_deliveries_by_ref ON webhook_deliveries(project, ref, received_at);
                CREATE UNIQUE INDEX webhook_deliveries_by_body ON webhook_deliveries(project, body_sha256);
                """)
    }

    public func insertProject(_ project: StoredProject) throws -> Bool {
        try database.write { db in
            guard try StoredProject.fetchOne(db, key: project.name) == nil else { return false }
            try project.insert(db)
            return true
        }
    }

    public func project(named name: String) throws -> StoredProject? {
        try database.read { try StoredProject.fetchOne($0, key: name) }
    }

    public func projects() throws -> [StoredProject] {
        try database.read { try StoredProject.order(Column("name")).limit(1000).fetchAll($0) }
    }

    public func deleteProject(named name: String) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "DELETE FROM webhook_deliveries WHERE project = ?", arguments: [name])
            return try StoredProject.deleteOne(db, key: name)
        }
    }

    public func recordDelivery(_ delivery: StoredDelivery) throws -> DeliveryRecord {
        try database.write { db in
            let existing =
                try StoredDelivery.fetchOne(db, key: ["project": delivery.project, "delivery_id": delivery.deliveryId])
                ?? StoredDelivery.filter(Column("project") == delivery.project && Column("body_sha256") == delivery.bodySha256)
                .fetchOne(db)
            guard var existing else {
                try delivery.insert(db)
                return .recorded(delivery.deliveryId)
            }
            guard existing.pipelineId == nil, existing.owner != delivery.owner else { return .duplicate(existing) }
            existing.owner = delivery.owner
            existing.receivedAt = delivery.receivedAt
            try existing.update(db)
            return .recorded(existing.deliveryId)
        }
    }

    /// Arguments (pipeline, project, delivery).
    public static let setDeliveryPipelineSQL = "UPDATE webhook_deliveries SET pipeline_id = ? WHERE project = ? AND delivery_id = ?"

    public func setDeliveryPipeline(project: String, deliveryID: String, pipelineID: String) throws {
        try database.write { db in
            try db.execute(sql: Self.setDeliveryPipelineSQL, arguments: [pipelineID, project, deliveryID])
        }
    }

    public func forgetDelivery(project: String, deliveryID: String) throws {
        try database.write { db in
            _ = try StoredDelivery.deleteOne(db, key: ["project": project, "delivery_id": deliveryID])
        }
    }

    public func deliveries(project: String, ref: String, limit: Int) throws -> [StoredDelivery] {
        try database.read { db in
            try StoredDelivery.filter(Column("project") == project && Column("ref") == ref && Column("pipeline_id") != nil)
                .order(Column("received_at").desc).limit(limit).fetchAll(db)
        }
    }

    public func resealWebhookSecrets(_ reseal: (StoredProject) throws -> StoredProject) throws -> Int {
        try database.write { db in
            let rows = try StoredProject.fetchAll(db)
            for row in rows { try reseal(row).update(db) }
            return rows.count
        }
    }
}
