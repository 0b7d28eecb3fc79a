import Foundation
import GantryProtocol
import Logging
import Synchronization

/// Appends audit records for the API and the host commands.
///
/// Every text field is made log-safe and cut (an object or detail comes from a URL or a
/// body a caller chose: up to 80 KiB of it, with control characters or bidi overrides that
/// would spoof `gantry audit`'s output). Refusals are rate-limited per token
/// (`RefusalLimiter`): a caller looping on a refused call cannot grow the log without bound,
/// and what was not recorded one by one is recorded as one `audit.suppressed` record.
///
/// An append that fails is logged at error level and does not fail the request whose
/// change already happened: the change is committed, and refusing to answer would make
/// the caller retry it. (A store that refuses writes stops the coordinator anyway, see
/// `CoordinatorCore.Configuration.onStoreFailure`.)
public struct AuditLog: Sendable {
    public let store: any AuditStore
    let logger: Logger
    let refusals: RefusalLimiter

    public static let maximumFieldLength = 256

    public init(store: any AuditStore, logger: Logger, refusalsPerMinute: Int = 120) {
        self.store = store
        self.logger = logger
        self.refusals = RefusalLimiter(perMinute: refusalsPerMinute)
    }

    public func record(_ event: AuditEvent, at date: Date = Date()) {
        let event = Self.bounded(event)
        if event.outcome == "denied" || event.outcome == "refused" {
            switch refusals.admit(key: event.tokenID ?? event.actor, now: date) {
            case .record: break
            case .drop: return
            case .recordWithSuppressed(let count):
                append(
                    AuditEvent(
                        actor: event.actor, tokenID: event.tokenID, address: event.address, action: "audit.suppressed",
                        object: "token:\(event.tokenID ?? "-")", outcome: "refused",
                        detail: ["count": String(count), "reason": "more than \(refusals.perMinute) refused calls in a minute"]),
                    date)
            }
        }
        append(event, date)
    }

    private func append(_ event: AuditEvent, _ date: Date) {
        do {
            try store.appendAudit(event, at: date)
        } catch {
            logger.error(
                "could not append to the audit log",
                metadata: ["action": "\(event.action)", "object": "\(event.object.logSafe())", "error": "\(error)"])
        }
    }

    static func bounded(_ event: AuditEvent) -> AuditEvent {
        let limit = maximumFieldLength
        var detail: [String: String] = [:]
        for (key, value) in event.detail.prefix(32) {
            detail[key.logSafe(maximum: 64)] = value.logSafe(maximum: limit)
        }
        return AuditEvent(
            actor: event.actor.logSafe(maximum: limit), tokenID: event.tokenID?.logSafe(maximum: 64),
            address: event.address?.logSafe(maximum: 64), action: event.action.logSafe(maximum: 64),
            object: event.object.logSafe(maximum: limit), outcome: event.outcome.logSafe(maximum: 32), detail: detail)
    }
}

/// At most `perMinute` refused calls recorded per token per minute; the rest are counted
/// and reported once, with the first refusal recorded in the next minute. Bounded: it
/// forgets every key when it holds 10,000.
public final class RefusalLimiter: Sendable {
    public enum Decision: Equatable {
        case record
        case drop
        case recordWithSuppressed(Int)
    }

    let perMinute: Int
    private let windows = Mutex<[String: (start: Date, count: Int, suppressed: Int)]>([:])

    init(perMinute: Int) {
        self.perMinute = perMinute
    }

    public func admit(key: String, now: Date) -> Decision {
        windows.withLock { windows in
            if windows.count >= 10_000, windows[key] == nil { windows.removeAll() }
            guard var window = windows[key], now.timeIntervalSince(window.start) < 60 else {
                let suppressed = windows[key]?.suppressed ?? 0
                windows[key] = (now, 1, 0)
                return suppressed > 0 ? .recordWithSuppressed(suppressed) : .record
            }
            window.count += 1
            if window.count > perMinute {
                window.suppressed += 1
                windows[key] = window
                return .drop
            }
            windows[key] = window
            return .record
        }
    }
}
