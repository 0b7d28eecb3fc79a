import Synchronization

/// What a handler tells the audit record about its request: the object it acted on (a
/// pipeline id, a token id, a secret's name and scope) and a few details. A reference,
/// because Hummingbird passes the request context to handlers by value.
public final class AuditNote: Sendable {
    private let state = Mutex<(object: String?, detail: [String: String])>((nil, [:]))

    public init() {}

    public func set(object: String) {
        state.withLock { $0.object = object }
    }

    public func add(_ key: String, _ value: String) {
        state.withLock { $0.detail[key] = value }
    }

    var snapshot: (object: String?, detail: [String: String]) {
        state.withLock { $0 }
    }
}
