/// The host's git mirrors (`gantry-agent run --git-mirrors DIR`): one bare repository per
/// repository URL, shared by every slot on the host, so the network is touched once per
/// host per push and a checkout is a local clone.
///
/// The directory is the agent user's, 0700: steps (as their step user) cannot read or
/// write it, so a step cannot poison a mirror other pipelines check out from, nor read the
/// mirror of another pipeline's repository. Only the agent writes it, and only by
/// fetching from the mirror's own URL.
public struct GitMirrors: Sendable, Equatable {
    public var directory: String
    /// Accept `file://` and local-path repositories (tests, hosts that serve repositories
    /// from a local disk). Off by default: a local URL reads any repository the agent's
    /// user can read on the host. Never for submodules (`GitEnvironment.anonymous`).
    public var allowFileURLs: Bool
    /// How long a slot waits for another slot's fetch into the same mirror. By default a
    /// little longer than `checkoutTimeout`, which bounds the holder's work from the moment
    /// it took the lock: a slot waiting behind a large first fetch outlasts it instead of
    /// failing while it still runs. The step's timeout and a cancel end the wait earlier.
    public var lockTimeout: Duration
    /// The longest the git work of a checkout (fetch, clone, submodules) may take once the
    /// slot holds the mirror's lock, also for a step without `timeout:`, so an unresponsive
    /// server cannot hold a slot (nor the mirror) forever.
    public var checkoutTimeout: Duration
    /// What the default lock wait adds to `checkoutTimeout`: room for the holder's git to
    /// be stopped (TERM, then KILL) and the lock released.
    public static let lockMargin: Duration = .seconds(5 * 60)
    /// Mirrors no checkout used for this long are removed when the agent starts
    /// (`MirrorPrune`); nil keeps them forever.
    public var maximumIdle: Duration? = .seconds(30 * 86_400)
    /// How many checked-out work trees per repository the host keeps beside its mirror
    /// (`WorkTrees`); 0 turns them off, and every checkout copies the history.
    public var workTreesPerRepository: Int = 2
    /// The most `--git-work-trees` accepts.
    public static let maximumWorkTreesPerRepository = 64

    public init(
        directory: String, allowFileURLs: Bool = false, lockTimeout: Duration? = nil,
        checkoutTimeout: Duration = .seconds(60 * 60)
    ) {
        self.directory = directory
        self.allowFileURLs = allowFileURLs
        self.lockTimeout = lockTimeout ?? checkoutTimeout + Self.lockMargin
        self.checkoutTimeout = checkoutTimeout
    }

    /// Where `repository`'s mirror lives.
    public func mirrorPath(for repository: RepositoryURL) -> String {
        "\(directory)/\(repository.mirrorName)"
    }

    /// Where `repository`'s work trees live: `<mirror name without .git>.trees`, beside
    /// the mirror and, like it, only the agent's.
    public func workTreesPath(for repository: RepositoryURL) -> String {
        "\(directory)/\(repository.mirrorName.dropLast(".git".count)).trees"
    }
}
