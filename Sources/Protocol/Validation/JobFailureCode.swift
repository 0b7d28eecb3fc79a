/// Why an agent failed a job on its own, before or after the step's commands
/// (`JobFinished.failure`, protocol version 4): a stable code, kept apart from the commands'
/// exit status so that "the source could not be checked out" is never read as "the build
/// failed".
public enum JobFailureCode {
    /// The repository could not be fetched, the commit is not in it, or the checked-out
    /// HEAD is not the commit.
    public static let checkoutFailed = "checkout_failed"
    /// A `download:` artifact could not be fetched or did not match its digest.
    public static let downloadFailed = "download_failed"
    /// An `artifacts:` upload failed after the commands.
    public static let artifactUploadFailed = "artifact_upload_failed"

    public static let known: Set<String> = [checkoutFailed, downloadFailed, artifactUploadFailed]
    /// A code is at most this many bytes.
    public static let maximumLength = 64

    /// Whether `code` may be stored and shown: empty (none), a known code, or, from a newer
    /// agent, any other 1-64 bytes of `a-z` and `_`, so a code is always a plain token in
    /// the API, the CLI and the logs.
    public static func isValid(_ code: String) -> Bool {
        if code.isEmpty || known.contains(code) { return true }
        return code.utf8.count <= maximumLength
            && code.utf8.allSatisfy { ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || $0 == UInt8(ascii: "_") }
    }
}
