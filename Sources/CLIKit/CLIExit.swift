/// The CLI's exit codes, one meaning each, listed in `gantry --help`.
public enum CLIExit {
    /// The pipeline (or command) succeeded.
    public static let success: Int32 = 0
    /// The pipeline failed or was cancelled; or the server refused one request (404, 422).
    public static let failed: Int32 = 1
    /// The command line was wrong (ArgumentParser's own code is 64, EX_USAGE).
    public static let usage: Int32 = 2
    /// The server could not be reached, or refused us (401, 403, 5xx): nothing was decided.
    public static let unreachable: Int32 = 3
    /// Interrupted (Ctrl-C) while following, without cancelling: 128 + SIGINT.
    public static let interrupted: Int32 = 130

    /// Whether an HTTP status means the server refuses us as a whole rather than answers
    /// this one request: a bad token or missing permission, or the server's own failure.
    public static func isRefusal(_ status: Int) -> Bool {
        status == 401 || status == 403 || status >= 500
    }
}
