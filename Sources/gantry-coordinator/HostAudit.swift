import Foundation
import GantryCoordinator
import Logging

/// Appends an audit record for a command run on the coordinator's host: the actor is the
/// Unix user (`host:$USER`), the address `host`. These commands change who may act
/// (tokens, join tokens, the secrets key), so they leave the same trace the API does.
func recordHostAction(
    _ store: any AuditStore, action: String, object: String, outcome: String = "succeeded", detail: [String: String] = [:]
) {
    let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "uid\(getuid())"
    AuditLog(store: store, logger: Logger(label: "gantry-coordinator")).record(
        AuditEvent(
            actor: "host:\(user)", tokenID: nil, address: "host", action: action, object: object, outcome: outcome,
            detail: detail))
}
