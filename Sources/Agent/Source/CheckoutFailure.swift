/// Why a checkout could not be done: the message the job fails with (`JobFinished.message`,
/// with `failure = checkout_failed`) and the last `gantry: checkout …` line of its log,
/// after the last lines of the failing git's output (`gantry: git: …`).
///
/// Both may hold credentials as git printed them: `JobRunner.checkOut` passes everything
/// through `URLUserinfo.redacted` before it leaves the checkout.
public struct CheckoutFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// The last lines of the failing git's output, each bounded and escaped (`logSafe`).
    public var output: [String]

    /// How many of git's last lines go to the log.
    static let maximumOutputLines = 20

    public init(_ message: String, output: [String] = []) {
        self.message = message
        self.output = output
    }

    public var description: String { message }
}
