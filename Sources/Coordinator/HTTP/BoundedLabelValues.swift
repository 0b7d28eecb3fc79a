import Synchronization

/// Caps how many distinct values one Prometheus label takes. Step keys and agent label
/// sets come from pipeline files and agents, so a label made of them is as unbounded as
/// its users: every new value is a new series in every scrape forever. The first
/// `maximum` values seen (per process) are kept; any later one is reported as `other`
/// (docs/operations.md, "Metrics"). Values are also reduced to a safe alphabet and
/// length, so none needs escaping in the exposition.
final class BoundedLabelValues: Sendable {
    static let other = "other"
    let maximum: Int
    private let seen = Mutex<Set<String>>([])

    init(maximum: Int = 200) { self.maximum = maximum }

    /// `value` if it is one of the first `maximum` seen, else `other`. O(1).
    func label(_ value: String) -> String {
        let safe = Self.sanitized(value)
        return seen.withLock { seen in
            if seen.contains(safe) { return safe }
            guard seen.count < maximum else { return Self.other }
            seen.insert(safe)
            return safe
        }
    }

    /// At most 128 bytes of letters, digits and `_.:=,/-`; anything else becomes `_`.
    static func sanitized(_ value: String) -> String {
        var out = ""
        for scalar in value.unicodeScalars.prefix(128) {
            let allowed = scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "_.:=,/-".unicodeScalars.contains(scalar))
            out.unicodeScalars.append(allowed ? scalar : "_")
        }
        return out
    }
}
