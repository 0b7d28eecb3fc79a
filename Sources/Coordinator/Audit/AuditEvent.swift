import Foundation

/// One state change attempted through the API or the CLI, as the audit log records it:
/// who (identity and token), from where, what, on which object, and how it ended.
///
/// `outcome` is `succeeded`, `denied` (the caller lacked the permission), `refused`
/// (a 4xx answer: invalid input, not found, conflict) or `failed` (the coordinator
/// could not do it). `detail` carries what a reviewer needs and nothing secret: never a
/// token, a secret value or a request body.
public struct AuditEvent: Sendable, Equatable, Codable {
    public var actor: String
    public var tokenID: String?
    public var address: String?
    public var action: String
    public var object: String
    public var outcome: String
    public var detail: [String: String]

    public init(
        actor: String, tokenID: String?, address: String?, action: String, object: String, outcome: String,
        detail: [String: String] = [:]
    ) {
        self.actor = actor
        self.tokenID = tokenID
        self.address = address
        self.action = action
        self.object = object
        self.outcome = outcome
        self.detail = detail
    }
}
