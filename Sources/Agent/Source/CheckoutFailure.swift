/// Why a checkout could not be done: the message the job fails with (`JobFinished.message`,
/// with `failure = checkout_failed`) and the last `gantry: checkout …` line of its log.
/// Never holds a credential: URLs in it are `RepositoryURL.redacted`.
public struct CheckoutFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
