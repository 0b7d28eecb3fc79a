import GantryPipeline
import GantryProtocol
import GantryTransferRules

/// Bounds the fields of a pipeline submission that come from the API request rather
/// than from the YAML (which `PipelineParser` bounds): the pipeline-wide `env` merged
/// into every job, and the source fields copied into every lease.
///
/// Uses the pipeline file's own environment limits, so a variable that could not be
/// written in the file cannot be smuggled in through the request either. Runs on the
/// request's task, before the core sees the submission.
enum SubmissionCheck {
    static let maximumRepositoryBytes = 2048
    static let maximumCommitBytes = 256
    static let maximumBranchBytes = 1024
    static let maximumFileNameBytes = 256
    static let maximumTagBytes = 1024
    /// Commit messages are free text conditions match on (`message =~ /skip deploy/`);
    /// 64 KiB holds any real one and bounds what each condition scans.
    static let maximumMessageBytes = 64 * 1024

    /// A full SHA-1 or SHA-256 object id, lowercase or uppercase hexadecimal.
    static func isFullCommitID(_ commit: String) -> Bool {
        let bytes = commit.utf8
        return (bytes.count == 40 || bytes.count == 64) && bytes.allSatisfy { byte in
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
        }
    }

    static func check(_ request: API.SubmitPipeline) throws(PipelineError) {
        let file = request.file ?? "pipeline.yml"
        func fail(_ message: String) -> PipelineError {
            PipelineError(file: file, line: nil, column: nil, message: message)
        }
        guard file.utf8.count <= maximumFileNameBytes, !file.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            throw PipelineError(
                file: "pipeline.yml", line: nil, column: nil,
                message: "`file` must be at most \(maximumFileNameBytes) bytes without control characters")
        }
        for (field, value, limit) in [
            ("repository", request.repository, maximumRepositoryBytes), ("commit", request.commit, maximumCommitBytes),
            ("branch", request.branch, maximumBranchBytes), ("tag", request.tag, maximumTagBytes),
        ] {
            guard let value else { continue }
            guard value.utf8.count <= limit, !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
            else { throw fail("`\(field)` must be at most \(limit) bytes without control characters") }
        }
        if let repository = request.repository, !repository.isEmpty {
            // The agents' own rule (`RepositoryURL` checks it again): a URL none would
            // check out fails here, once, not in every step's checkout. The URL is not
            // echoed, as it may hold a token.
            do {
                _ = try RepositoryAddress(parsing: repository)
            } catch {
                throw fail("`repository` \(error.description)")
            }
        }
        if let repository = request.repository, !repository.isEmpty, let commit = request.commit, !commit.isEmpty,
            !isFullCommitID(commit)
        {
            // Every step's agent checks out `commit` itself: a branch name or a short id
            // would be resolved by each step on its own, and a push between two steps
            // would make one pipeline test one commit and deploy another.
            throw fail(
                "`commit` must be a full commit id (40 or 64 hexadecimal characters) when a repository is given, "
                    + "so that every step checks out the same commit: resolve it first (`git rev-parse \(commit.logSafe(maximum: 40))`)")
        }
        if let source = request.fromPipeline, !PipelineParser.isValidPipelineID(source) {
            throw fail("`from_pipeline` must be a pipeline id (1-128 ASCII letters, digits or `-`)")
        }
        if let message = request.message {
            guard message.utf8.count <= maximumMessageBytes, !message.utf8.contains(0) else {
                throw fail("`message` must be at most \(maximumMessageBytes / 1024) KiB without NUL characters")
            }
        }
        let env = request.env ?? [:]
        guard env.count <= PipelineLimits.maximumEnvironmentEntries else {
            throw fail("the request's `env` has \(env.count) entries; the limit is \(PipelineLimits.maximumEnvironmentEntries)")
        }
        for (name, value) in env {
            guard !name.isEmpty, name.utf8.count <= PipelineLimits.maximumEnvironmentNameBytes,
                !name.utf8.contains(UInt8(ascii: "=")), !name.utf8.contains(0)
            else {
                throw fail(
                    "the request's `env` has a name that is empty, longer than \(PipelineLimits.maximumEnvironmentNameBytes) bytes, "
                        + "or contains `=` or NUL")
            }
            guard value.utf8.count <= PipelineLimits.maximumEnvironmentValueBytes, !value.utf8.contains(0) else {
                throw fail(
                    "the request's `env.\(name.logSafe(maximum: 60))` is longer than \(PipelineLimits.maximumEnvironmentValueBytes) bytes "
                        + "or contains NUL")
            }
        }
    }
}
