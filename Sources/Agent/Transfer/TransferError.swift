/// Why a transfer failed, in words for the step's log (`gantry: …`). None of them carries
/// the job token or a response body beyond a short excerpt.
public enum TransferError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `GANTRY_API_URL` is missing or not an `http(s)://host[:port][/path]` URL.
    case invalidAPIURL(String)
    /// The lease carries no job token, so nothing can be transferred.
    case noJobToken
    /// No connection, or it broke before the response ended. Retried.
    case connection(String)
    /// The API answered with an error status (`code` from its JSON body when it has one).
    case status(Int, String)
    /// The answer was not what the contract says (a bad header, an oversized body).
    case protocolViolation(String)
    /// The bytes received do not have the digest they were asked for by.
    case digestMismatch(expected: String, actual: String)
    /// A path the agent refuses to write or read (outside the work dir, through a link).
    case unsafePath(String)
    /// Reading or writing a local file failed.
    case file(String)
    /// The step was cancelled or timed out while the transfer ran.
    case stopped
    /// More than a bound allows (files matched, bytes announced).
    case limit(String)

    public var description: String {
        switch self {
        case .invalidAPIURL(let why): "the API URL is not usable: \(why)"
        case .noJobToken: "the lease carries no job token"
        case .connection(let why): "connection to the API failed: \(why)"
        case .status(let status, let message): "the API answered \(status)\(message.isEmpty ? "" : ": \(message)")"
        case .protocolViolation(let why): "the API's answer broke the contract: \(why)"
        case .digestMismatch(let expected, let actual): "sha256 mismatch: expected \(expected), received \(actual)"
        case .unsafePath(let why): "refused: \(why)"
        case .file(let why): why
        case .stopped: "stopped (the step was cancelled or timed out)"
        case .limit(let why): why
        }
    }

    /// Worth another try after a pause: the network or the server's moment, not the request.
    var isRetryable: Bool {
        switch self {
        case .connection: true
        case .status(let status, _): status >= 500 || status == 429 || status == 408
        default: false
        }
    }
}
