/// Why a secret cannot be set as asked. Each message says what to do instead, and none
/// ever contains the value.
public enum SecretRuleError: Error, Equatable, CustomStringConvertible {
    case invalidName(String)
    case invalidScope(String)
    case invalidValue(String)

    public var description: String {
        switch self {
        case .invalidName(let problem): return problem
        case .invalidScope(let problem): return "invalid scope: \(problem)"
        case .invalidValue(let problem): return problem
        }
    }
}
