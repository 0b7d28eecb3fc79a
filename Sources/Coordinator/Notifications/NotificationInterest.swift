import Synchronization

/// Which event types any registered endpoint wants: read by the core on every commit
/// (one lock, one set copy), so a coordinator with no endpoints writes no events at all.
/// Set at start from the store and after every create or delete.
public final class NotificationInterest: Sendable {
    private let wanted = Mutex<Set<NotificationEventType>>([])

    public init() {}

    public var current: Set<NotificationEventType> { wanted.withLock { $0 } }

    /// Recomputes from the registered endpoints.
    func update(from endpoints: [StoredNotificationEndpoint]) {
        var types: Set<NotificationEventType> = []
        for endpoint in endpoints {
            let named = endpoint.eventTypes.compactMap(NotificationEventType.init(rawValue:))
            types.formUnion(named.isEmpty ? NotificationEventType.allCases : named)
        }
        wanted.withLock { $0 = types }
    }
}
