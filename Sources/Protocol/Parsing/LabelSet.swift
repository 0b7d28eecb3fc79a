/// Labels (an agent's, or a job's selector) in the one spelling Gantry uses for them on
/// command lines, in the API and in metrics: `k=v` pairs joined by commas, `os=linux,queue=default`;
/// `""` is no labels (a selector that matches any agent). The one parser and printer: agent
/// and scaler `--labels`, the API's `?labels=`, metrics and the CLI's listings.
///
/// The rules are the wire's (`WireLimits`, checked again by `MessageValidation` on every
/// `Hello`), so a label the coordinator would refuse is refused where it is typed.
public enum LabelSet {
    /// `k=v` pairs sorted by key, joined by commas.
    public static func format(_ labels: [String: String]) -> String {
        labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// Parses `k=v,k=v`. Whitespace around keys and values is dropped and empty pairs
    /// (`a=1,,b=2`, a trailing comma) are skipped; a value may contain `=` (`k=a=b` is
    /// `a=b`) and may be empty. Refused, naming the first offender: a pair without `=`, a
    /// key that breaks `keyProblem`, a value that breaks `valueProblem`, a key given twice,
    /// more than `WireLimits.labelCount` labels.
    public static func parse(_ text: String) -> Result<[String: String], LabelSetError> {
        var labels: [String: String] = [:]
        for pair in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmedPair = trimmed(pair)
            if trimmedPair.isEmpty { continue }
            guard let equals = trimmedPair.firstIndex(of: "=") else {
                return .failure(LabelSetError(pair: String(trimmedPair), problem: "it is not k=v"))
            }
            let key = String(trimmed(trimmedPair[..<equals]))
            let value = String(trimmed(trimmedPair[trimmedPair.index(after: equals)...]))
            if let problem = keyProblem(key) ?? valueProblem(value) {
                return .failure(LabelSetError(pair: String(trimmedPair), problem: problem))
            }
            guard labels.updateValue(value, forKey: key) == nil else {
                return .failure(LabelSetError(pair: String(trimmedPair), problem: "the key '\(key)' is given twice"))
            }
        }
        guard labels.count <= WireLimits.labelCount else {
            return .failure(LabelSetError(pair: text, problem: "more than \(WireLimits.labelCount) labels"))
        }
        return .success(labels)
    }

    /// Why `key` cannot be a label key, or nil: 1 to `WireLimits.labelKeyLength` bytes,
    /// no whitespace, control characters or `=`, and no empty, `.` or `..` part between
    /// slashes (`team/queue` is fine).
    public static func keyProblem(_ key: String) -> String? {
        let bytes = key.utf8.count
        guard bytes >= 1 else { return "the key is empty" }
        guard bytes <= WireLimits.labelKeyLength else { return "the key is \(bytes) bytes, more than \(WireLimits.labelKeyLength)" }
        guard !key.unicodeScalars.contains(where: { $0.properties.isWhitespace || isControl($0) || $0 == "=" }) else {
            return "the key contains whitespace, a control character or '='"
        }
        guard !key.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0.isEmpty || $0 == "." || $0 == ".." })
        else { return "the key has an empty, '.' or '..' part between slashes" }
        return nil
    }

    /// Why `value` cannot be a label value, or nil: at most `WireLimits.labelValueLength`
    /// bytes, no control characters.
    public static func valueProblem(_ value: String) -> String? {
        let bytes = value.utf8.count
        guard bytes <= WireLimits.labelValueLength else {
            return "the value is \(bytes) bytes, more than \(WireLimits.labelValueLength)"
        }
        guard !value.unicodeScalars.contains(where: isControl) else { return "the value contains a control character" }
        return nil
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || scalar.value == 0x7F
    }

    static func trimmed(_ text: Substring) -> Substring {
        guard let first = text.firstIndex(where: { !$0.isWhitespace }), let last = text.lastIndex(where: { !$0.isWhitespace })
        else { return text[text.endIndex...] }
        return text[first...last]
    }
}

public struct LabelSetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The offending `k=v` pair (or the whole text, for too many labels).
    public var pair: String
    public var problem: String

    public init(pair: String, problem: String) {
        self.pair = pair
        self.problem = problem
    }

    public var description: String {
        "labels must be k=v pairs separated by commas; '\(pair)' is refused: \(problem)"
    }
}
