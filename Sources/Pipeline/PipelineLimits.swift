/// Every bound a pipeline file must respect, checked by `PipelineParser` before anything is
/// stored or queued. docs/pipeline.md ("Limits") lists them for users.
///
/// A pipeline comes from anyone who may call the API, and the coordinator turns it into
/// database rows, lease frames, `execve` arguments and timers. Each bound is far above what
/// a real pipeline needs and far below what would trap an integer conversion, make one
/// submission occupy the coordinator for long, or produce a job no agent could run. They
/// are constants, not settings, so that a file valid on one coordinator is valid on all.
public enum PipelineLimits {
    // MARK: - The file

    /// Largest pipeline file: 1 MiB, the HTTP API's request body limit, and GitLab's
    /// long-standing default for one CI file. Real pipelines are a few KiB; generated ones
    /// with hundreds of steps stay well below.
    public static let maximumYAMLBytes = 1024 * 1024

    /// Deepest nesting of YAML lists and mappings. The format itself is at most 6 deep
    /// (`steps` → step → `retry` → `automatic` → rule); 32 leaves room for anchors kept in
    /// odd places while keeping the YAML composer, which recurses once per level, shallow.
    public static let maximumDepth = 32

    /// Most YAML nodes (scalars, lists, mappings) once every alias is replaced by what it
    /// names, counted without expanding anything. 500 large steps need about 50,000; a file
    /// that expands to more is an alias bomb, not a pipeline.
    public static let maximumExpandedNodes = 100_000

    /// Most bytes of text the pipeline stands for once expanded: the YAML's strings with
    /// every alias replaced by what it names, and, once parsed, every job's strings (after
    /// `matrix:` and `parallelism:` expansion and `{{matrix.NAME}}` interpolation) plus the
    /// pipeline-level `env` each job inherits. This is about what one submission writes to
    /// the database; 8 MiB is 8 times the largest file, ample for 1,000 jobs of real size,
    /// and stops an 80 KB file from becoming 40 MB of jobs.
    public static let maximumExpandedBytes = 8 * 1024 * 1024

    // MARK: - Steps

    /// Most steps in one pipeline (`wait` entries do not count): 500, Buildkite's limit per
    /// pipeline upload. A submission is stored in one transaction and every step is
    /// scheduled and cancelled individually; bigger builds should be split into several
    /// pipelines. What the steps expand into is bounded by `maximumJobs`.
    public static let maximumSteps = 500

    /// Longest step `key`: keys are identifiers typed in `depends_on` and shown in
    /// listings, and appear in every job's environment as `GANTRY_STEP`.
    public static let maximumKeyLength = 100

    /// Longest step `name` in UTF-8 bytes: a display name, shown on one line.
    public static let maximumNameBytes = 256

    /// Most commands in one step. Each is its own `/bin/sh -c`; a longer list belongs in
    /// a script in the repository.
    public static let maximumCommands = 256

    /// Longest single command in bytes. The agent passes a command as one `execve`
    /// argument, and Linux refuses any argument over 128 KiB (`MAX_ARG_STRLEN`) with
    /// E2BIG; 64 KiB keeps every accepted command runnable.
    public static let maximumCommandBytes = 64 * 1024

    /// Most `depends_on` entries in one step. Waiting on more than 100 steps is nearly
    /// always "after everything", which an intermediate step expresses; the bound keeps
    /// the coordinator's dependency release cheap when each job finishes.
    public static let maximumDependencies = 100

    /// Most `retry.automatic` rules in one step: one per reason or exit status that
    /// matters; they are stored with every job.
    public static let maximumRetryRules = 16

    /// Most bytes one job may carry (a step without `matrix:` or `parallelism:` is one job;
    /// with them, each job is counted after interpolation): its commands, its environment (the pipeline-level
    /// `env` merged with its own, counted as `NAME=value`), its agent selector, key, name
    /// and dependencies. All of it travels in one lease frame and, for the commands and
    /// environment, in one `execve`, whose arguments and environment together Linux caps
    /// at a quarter of the stack limit (2 MiB by default). 1 MiB leaves room for the
    /// submission's `--env` and the variables the agent adds.
    public static let maximumStepBytes = 1024 * 1024

    // MARK: - Environment and agent selectors

    /// Most entries in one `env` mapping (top level or step): real jobs set tens.
    public static let maximumEnvironmentEntries = 256

    /// Longest environment variable name in bytes.
    public static let maximumEnvironmentNameBytes = 256

    /// Longest environment value in bytes: Linux refuses any single `NAME=value` over
    /// 128 KiB; 32 KiB is plenty for a value written in a pipeline file.
    public static let maximumEnvironmentValueBytes = 32 * 1024

    /// Most labels in one `agents` selector, and their lengths: the same bounds the wire
    /// puts on the labels an agent announces (`WireLimits.labelCount`, `labelKeyLength`,
    /// `labelValueLength`), since a selector beyond them could never match any agent.
    public static let maximumAgentLabels = 64
    public static let maximumAgentLabelKeyBytes = 63
    public static let maximumAgentLabelValueBytes = 255

    // MARK: - Secrets and environments

    /// Most names in one step's `secrets:`. Each becomes an environment variable and a
    /// string the agent masks in the log; a step needing more is doing several jobs.
    public static let maximumSecretsPerStep = 100

    /// Longest secret name: environment variable names get no longer in practice, and
    /// the same bound applies at `gantry secret set`.
    public static let maximumSecretNameBytes = 255

    /// Longest `environment:` name: a DNS label's length, so it can name a namespace,
    /// a host or a cluster on the deploying side without being cut.
    public static let maximumDeployEnvironmentBytes = 63

    // MARK: - Durations

    /// Longest `timeout`: 7 days (604,800 s). A CI step running longer is stuck; the
    /// value also crosses the wire as a `uint32` number of seconds, which it fits.
    public static let maximumTimeoutSeconds = 7 * 24 * 3600

    /// Longest `cancel_grace`: 1 hour. The grace delays SIGKILL after a cancel or a
    /// timeout; a step that needs longer to clean up should do so before its timeout.
    public static let maximumCancelGraceSeconds = 3600

    // MARK: - Fan-out: `matrix:` and `parallelism:`

    /// Most jobs one step expands into (matrix combinations × `parallelism`): 256, GitHub
    /// Actions' limit per matrix. Jobs of a step share its key, and `depends_on` on it waits
    /// for all of them; past a few hundred a step is a test-splitting tool's job.
    public static let maximumJobsPerStep = 256

    /// Most jobs in one pipeline after expansion: each is a row, a lease and a schedule
    /// decision of its own, and every job is decided again when a dependency ends. 1,000 is
    /// twice `maximumSteps`, so a pipeline of plain steps never meets it.
    public static let maximumJobs = 1000

    /// Most `parallelism:` copies of one step; also bounded by `maximumJobsPerStep`.
    public static let maximumParallelism = 256

    /// Most dimensions in one `matrix:`: real matrices have two to four (os, toolchain,
    /// architecture, a feature flag); each is part of every job name.
    public static let maximumMatrixDimensions = 10

    /// Most values in one matrix dimension.
    public static let maximumMatrixValues = 100

    /// Longest matrix dimension name, in bytes (ASCII letters, digits, `_` and `-`).
    public static let maximumMatrixNameBytes = 64

    /// Longest matrix value, in bytes: it is interpolated into commands, names and labels.
    public static let maximumMatrixValueBytes = 256

    /// Most combinations of the dimensions before `exclude` removes any. The parser lists
    /// them to apply `exclude`, so this bounds that work (at most this many combinations,
    /// each compared with every `exclude` entry); what remains must still fit in
    /// `maximumJobsPerStep`.
    public static let maximumMatrixCombinationsBeforeExclude = 1024

    /// Most entries in `matrix.exclude`, and in `matrix.include`: an include adds a job,
    /// so more than `maximumJobsPerStep` of them could never be valid.
    public static let maximumMatrixAdjustments = 256

    // MARK: - Conditions, priorities and concurrency groups

    /// Longest `if:` expression in bytes: a condition is one line of comparisons, not a
    /// program, and it is parsed at every submission.
    public static let maximumConditionBytes = 1024

    /// `priority:` bounds (the default is 0). Wide enough for any ranking a team invents,
    /// small enough to store and compare anywhere.
    public static let minimumPriority = -1000
    public static let maximumPriority = 1000

    /// Largest `concurrency.limit`: a group is for scarce things (a deploy target, a
    /// device); more than 100 at once is not scarce.
    public static let maximumConcurrencyLimit = 100

    /// Longest `concurrency.group` after interpolation, in bytes: it is stored with every
    /// job and shown in listings.
    public static let maximumConcurrencyGroupBytes = 100

    // MARK: - Approval gates: `block:`

    /// Longest `block:` prompt in UTF-8 bytes, on one line: it is a question shown in
    /// listings and in `gantry approve`, like a step's name (`maximumNameBytes`).
    public static let maximumBlockPromptBytes = 256

    /// Most `fields` in one block: each is asked of the approver and written as one
    /// meta-data key (at most 1,000 per pipeline); a form longer than 20 inputs belongs in
    /// a file in the repository, not in an approval.
    public static let maximumBlockFields = 20

    /// Longest field key: a meta-data key, so the same bound the meta-data API has
    /// (`MetaDataRule.maximumKeyBytes`), or the approved value could never be stored.
    public static let maximumBlockFieldKeyBytes = 255

    /// Longest `text:`/`select:` label of a field in UTF-8 bytes, on one line: a display
    /// string, like a step's name.
    public static let maximumBlockFieldLabelBytes = 256

    /// Most `options` of a `select` field: a choice among more than 50 values is a text
    /// field; each option is shown to the approver and stored with the pipeline.
    public static let maximumBlockFieldOptions = 50

    /// Longest `select` option (and so a select's default) in UTF-8 bytes, on one line:
    /// a value chosen from a list, such as a channel or a region.
    public static let maximumBlockFieldOptionBytes = 256

    /// Longest `default` of a `text` field: the meta-data value limit
    /// (`MetaDataRule.maximumValueBytes`), since the default is stored as one when the
    /// approver gives no value.
    public static let maximumBlockFieldDefaultBytes = 64 * 1024

    /// Most entries in `allowed.roles`: there are four roles, and a deployer limited to
    /// environments (`deployer:production+staging`) is one entry; 20 is far more than a
    /// gate needs and keeps the check at decision time trivial.
    public static let maximumBlockRoles = 20

    /// Most environments after `deployer:` in one `allowed.roles` entry: the same bound the
    /// role syntax has elsewhere (`gantry identity`'s `deployer:ENV+ENV`).
    public static let maximumBlockRoleEnvironments = 64

    /// Most `allowed.identities`: a gate names a few people; a larger group is a role.
    public static let maximumBlockIdentities = 100

    /// Longest identity name in `allowed.identities`, in bytes (ASCII letters, digits,
    /// `.`, `_`, `-`): the rule every identity's name follows, so a longer one could never
    /// match anyone.
    public static let maximumIdentityNameBytes = 64
}
