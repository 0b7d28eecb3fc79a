import Foundation
import GRDB

/// One `projects` row. The webhook secret is sealed by `SecretBox` (name
/// `webhook:<project>`, scope `pipeline`) under the key `keyId` names, and re-sealed by
/// `rotate-key` with the secrets.
public struct StoredProject: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "projects"

    public var name: String
    public var repository: String
    public var pipelineFile: String
    /// JSON lists of patterns.
    public var branches: String
    public var tags: String
    public var cancelSuperseded: Bool
    /// The identity pipelines are submitted as; nil: `project:NAME`, no role.
    public var runAs: String?
    public var sealedSecret: Data
    public var keyId: String
    public var createdBy: String
    public var createdAt: Date

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase

    public var branchPatterns: [String] { Self.list(branches) }
    public var tagPatterns: [String] { Self.list(tags) }

    static func list(_ json: String) -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data(json.utf8))) ?? []
    }

    static func json(_ list: [String]) -> String {
        String(decoding: (try? JSONEncoder().encode(list)) ?? Data("[]".utf8), as: UTF8.self)
    }

    /// Who the project's pipelines are submitted as.
    public var submitter: String { runAs ?? "project:\(name)" }

    /// The name and scope the secret is sealed under (`SecretBox`'s authenticated data):
    /// a sealed secret copied to another project's row does not open.
    static func secretName(_ project: String) -> String { "webhook:\(project)" }
}

/// One `webhook_deliveries` row: a delivery a project received and what it started.
/// The key (project, delivery) is what makes a replay start nothing.
public struct StoredDelivery: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "webhook_deliveries"

    public var project: String
    public var deliveryId: String
    /// The pipeline it started; nil while it is being started, or if starting it failed
    /// after the delivery was recorded (the coordinator died in between).
    public var pipelineId: String?
    public var ref: String
    public var commit: String
    /// The sha256 of the body: unique per project too, since the sender's delivery id is
    /// not signed, so a signed body re-sent under another id is the same delivery.
    public var bodySha256: String
    /// The coordinator process that recorded it (`WebhookRoutes.instance`): a delivery
    /// left without a pipeline by a process that died may be taken over by the next.
    public var owner: String
    public var receivedAt: Date

    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}

public enum DeliveryRecord: Sendable, Equatable {
    /// Recorded under this delivery id (the new one, or the one taken over).
    case recorded(String)
    case duplicate(StoredDelivery)
}

/// Where projects and their deliveries are kept.
public protocol ProjectStore: Sendable {
    /// Inserts a project; false if one with its name exists.
    func insertProject(_ project: StoredProject) throws -> Bool
    func project(named name: String) throws -> StoredProject?
    func projects() throws -> [StoredProject]
    /// Deletes a project and its deliveries; false if there was none.
    func deleteProject(named name: String) throws -> Bool
    /// Records a delivery unless one with its id or its body's sha256 is recorded already
    /// for the project: then `.duplicate` with the recorded one, and nothing changes. A
    /// recorded one that started no pipeline and was recorded by another process (which
    /// died before it could start it) is taken over instead: `.recorded` with its id.
    func recordDelivery(_ delivery: StoredDelivery) throws -> DeliveryRecord
    func setDeliveryPipeline(project: String, deliveryID: String, pipelineID: String) throws
    func forgetDelivery(project: String, deliveryID: String) throws
    /// The project's most recent deliveries for `ref` that started a pipeline, newest
    /// first, at most `limit`.
    func deliveries(project: String, ref: String, limit: Int) throws -> [StoredDelivery]
    /// Re-seals every project's webhook secret in one transaction (`rotate-key`).
    func resealWebhookSecrets(_ reseal: (StoredProject) throws -> StoredProject) throws -> Int
}
