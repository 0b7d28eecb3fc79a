/// Where an uploaded job came from: the attempt of the step that ran `gantry pipeline
/// upload`, and the digest of the file it uploaded.
///
/// A retried uploader (an automatic retry after the agent was lost, `gantry retry` of a
/// bootstrap step that failed after its upload) runs its upload again. Added a second
/// time, its keyed steps would clash with the first ones and fail the retry, and its
/// keyless steps would run twice. With the origin on every row, an upload whose digest
/// an earlier attempt of the same job already uploaded is answered with the jobs that
/// upload added, and adds nothing (`CoordinatorCore.uploadSteps`).
public struct UploadOrigin: Codable, Sendable, Equatable {
    /// The uploading job's id.
    public var job: String
    /// Its attempt that uploaded.
    public var attempt: Int
    /// SHA-256 (hex) of the file's name, a NUL and its text, as the CLI sent them.
    public var digest: String

    public init(job: String, attempt: Int, digest: String) {
        self.job = job
        self.attempt = attempt
        self.digest = digest
    }
}
