import Foundation
import Logging

/// Appends audit records for the API and the host commands.
///
/// An append that fails is logged at error level and does not fail the request whose
/// change already happened: the change is committed, and refusing to answer would make
/// the caller retry it. (A store that refuses writes stops the coordinator anyway, see
/// `CoordinatorCore.Configuration.onStoreFailure`.)
public struct AuditLog: Sendable {
    public let store: any AuditStore
    let logger: Logger

    public init(store: any AuditStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    public func record(_ event: AuditEvent, at date: Date = Date()) {
        do {
            try store.appendAudit(event, at: date)
        } catch {
            logger.error(
                "could not append to the audit log",
                metadata: ["action": "\(event.action)", "object": "\(event.object)", "error": "\(error)"])
        }
    }
}
