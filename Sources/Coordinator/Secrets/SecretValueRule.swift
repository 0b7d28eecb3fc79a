import GantryPipeline

/// What a secret's value must be, checked at `secret set` before anything is sealed.
public enum SecretValueRule {
    /// Shortest value: the agent masks each secret in the step's log by searching for it,
    /// and a short value (`1234`, `true`) also occurs in ordinary output, so masking it
    /// would blank innocent text while a leak of it would be indistinguishable. Eight
    /// bytes is the usual floor for a credential.
    public static let minimumBytes = 8
    /// Longest value: 64 KiB, room for a PEM key or a kubeconfig, and far below Linux's
    /// 128 KiB limit on one `NAME=value` in a process environment.
    public static let maximumBytes = 64 * 1024
    /// Most bytes of values one step may receive: the agent refuses a lease whose secrets
    /// hold more (its masker keeps about 20 forms of each value), so a submission that
    /// would exceed it is refused instead of being leased and refused by every agent.
    public static let maximumBytesPerStep = 1024 * 1024

    public static func check(name: String, value: String) throws(SecretRuleError) {
        if let problem = SecretName.problem(name) { throw .invalidName(problem) }
        let count = value.utf8.count
        guard count >= minimumBytes else {
            throw .invalidValue(
                "the value is \(count) bytes; secrets need at least \(minimumBytes), because shorter ones cannot be "
                    + "masked reliably in logs: use a longer credential")
        }
        guard count <= maximumBytes else {
            throw .invalidValue("the value is \(count) bytes; the limit is 64 KiB: put larger data in a file the step fetches")
        }
        guard !value.utf8.contains(0) else {
            throw .invalidValue("the value contains a NUL byte, which no process environment can hold")
        }
    }
}
