/// The bounds on what a step may declare for artifacts, downloads and caches, shared by
/// the pipeline parser (which refuses a file that breaks them, with line and column) and
/// the agent (which checks the lease again: a coordinator's values are input too).
public enum TransferLimits {
    /// Globs in one step's `artifacts:`.
    public static let maximumArtifactGlobs = 32
    /// Entries in one step's `download:`.
    public static let maximumDownloads = 32
    /// Paths in one step's `cache: {paths}`.
    public static let maximumCachePaths = 16
    /// Entries in one step's `cache: {restore_keys}`.
    public static let maximumRestoreKeys = 8
    /// Bytes of one glob or path as written.
    public static let maximumPathBytes = 512
    /// Bytes of a cache key template as written, and of a key once rendered.
    public static let maximumKeyBytes = 512
    /// `{{ checksum "FILE" }}` references in one template.
    public static let maximumChecksumsPerKey = 8
    /// Segments (`a/b/c` has three) of one glob or path.
    public static let maximumSegments = 64
    /// Files one step uploads as artifacts: a glob that matches more fails the upload
    /// rather than sending a tree of thousands of files one by one.
    public static let maximumArtifactFiles = 1_000
    /// Artifacts one `download:` entry may fetch.
    public static let maximumDownloadFiles = 1_000
    /// Directory entries the agent looks at while expanding a step's globs.
    public static let maximumScannedEntries = 100_000
    /// Bytes a restored cache may unpack to: the sum of its members' sizes as tar lists
    /// them, checked before anything is unpacked, so a small archive of zeros (a gzip
    /// bomb) cannot fill the agent's disk. Four times the coordinator's default largest
    /// archive (4 GiB).
    public static let maximumCacheExpandedBytes: UInt64 = 16 << 30
    /// Largest file `{{ checksum "FILE" }}` reads: lock files, not build outputs.
    public static let maximumChecksumFileBytes: Int64 = 64 << 20
}
