/// What a condition can ask about the build being submitted: the values behind the
/// variables `branch`, `tag`, `commit`, `message`, `source` and `env.NAME`.
///
/// The coordinator fills it from the submission when the pipeline is submitted; values
/// not given are empty, and an empty value is false in a boolean position, so `if: tag`
/// means "built for a tag". The caller bounds the text (commit messages ≤ 64 KiB), which
/// bounds the cost of matching regexes against it.
public struct ConditionContext: Sendable, Equatable {
    public var branch: String
    public var tag: String
    public var commit: String
    /// The commit message; may span many lines (regex `^` and `$` are whole-text anchors).
    public var message: String
    /// How the build started: `api` today; later `webhook`, `schedule`, `rebuild`…
    public var source: String
    /// The pipeline's `env`; `env.NAME` of a missing name is "".
    public var env: [String: String]

    public init(
        branch: String = "", tag: String = "", commit: String = "", message: String = "", source: String = "api",
        env: [String: String] = [:]
    ) {
        self.branch = branch
        self.tag = tag
        self.commit = commit
        self.message = message
        self.source = source
        self.env = env
    }
}
