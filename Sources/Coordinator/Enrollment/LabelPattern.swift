import GantryProtocol

/// One label a join token lets its agents claim: `key=value`, `key=*` (any value of that
/// key) or `*` (any label whose key does not grant trust).
///
/// Why `*` stops at trusted keys: the legacy `join.token` and every host enrolled before
/// enrollments were recorded get `*`, and that must not be a way to claim `queue=deploy`.
/// A trusted key (`TrustPolicy.trustedKeys`) is only ever allowed by a pattern that names
/// it.
///
/// Patterns are typed by operators (`join-token create --labels`) and stored as text, so
/// both paths parse with the same rules as labels (`LabelSet.keyProblem`/`valueProblem`);
/// `*` is a wildcard only on its own, never inside a value, so nobody writes `deploy-*`
/// believing it globs.
public enum LabelPattern: Hashable, Sendable, CustomStringConvertible {
    case exact(key: String, value: String)
    case anyValue(key: String)
    case anyUntrusted

    /// Most patterns in one list: as many as an agent may have labels.
    public static let maximumCount = WireLimits.labelCount

    public init(parsing text: String) throws(LabelPatternError) {
        let trimmed = text.trimmingWhitespace()
        if trimmed == "*" {
            self = .anyUntrusted
            return
        }
        guard let equals = trimmed.firstIndex(of: "=") else {
            throw LabelPatternError(pattern: trimmed, problem: "it is not key=value, key=* or *")
        }
        let key = String(trimmed[..<equals]).trimmingWhitespace()
        let value = String(trimmed[trimmed.index(after: equals)...]).trimmingWhitespace()
        if let problem = LabelSet.keyProblem(key) { throw LabelPatternError(pattern: trimmed, problem: problem) }
        guard !key.contains("*") else {
            throw LabelPatternError(pattern: trimmed, problem: "a key cannot be a wildcard: write `*` alone for any untrusted label")
        }
        if value == "*" {
            self = .anyValue(key: key)
            return
        }
        if let problem = LabelSet.valueProblem(value) { throw LabelPatternError(pattern: trimmed, problem: problem) }
        guard !value.contains("*") else {
            throw LabelPatternError(pattern: trimmed, problem: "`*` is a wildcard only as the whole value (key=*), not inside one")
        }
        self = .exact(key: key, value: value)
    }

    /// Parses `p,p,p` (as `--labels` takes it): empty items are skipped, duplicates
    /// dropped, order kept. At most `maximumCount` patterns.
    public static func parseList(_ text: String) throws(LabelPatternError) -> [LabelPattern] {
        var patterns: [LabelPattern] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: true) {
            let item = String(item)
            if item.trimmingWhitespace().isEmpty { continue }
            let pattern = try LabelPattern(parsing: item)
            if !patterns.contains(pattern) { patterns.append(pattern) }
            guard patterns.count <= maximumCount else {
                throw LabelPatternError(pattern: item, problem: "more than \(maximumCount) patterns")
            }
        }
        return patterns
    }

    public var description: String {
        switch self {
        case .exact(let key, let value): return "\(key)=\(value)"
        case .anyValue(let key): return "\(key)=*"
        case .anyUntrusted: return "*"
        }
    }

    /// Whether this pattern lets an agent claim `key=value`, given the keys that grant trust.
    public func allows(key: String, value: String, trustedKeys: Set<String>) -> Bool {
        switch self {
        case .exact(let patternKey, let patternValue): return patternKey == key && patternValue == value
        case .anyValue(let patternKey): return patternKey == key
        case .anyUntrusted: return !trustedKeys.contains(key)
        }
    }
}

public struct LabelPatternError: Error, Sendable, Equatable, CustomStringConvertible {
    public var pattern: String
    public var problem: String

    public var description: String {
        "label patterns are key=value, key=* or *, separated by commas; '\(pattern.logSafe(maximum: 80))' is refused: \(problem)"
    }
}

extension String {
    func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else {
            return ""
        }
        return String(self[first...last])
    }
}
