/// A parsed, validated pipeline file: what `PipelineParser` produces and the store expands
/// into jobs (docs/pipeline.md). Implicit dependencies (`wait`, `stage:`) are already folded
/// into `dependsOn`; `matrix:` and `parallelism:` are expanded into each step's `jobs`.
public struct PipelineDefinition: Sendable, Equatable {
    public var env: [String: String]
    public var steps: [Step]
    /// `artifacts_from: ID`: the earlier pipeline whose artifacts this one promotes (its
    /// steps download those exact digests). Checked to exist at submission.
    public var artifactsFrom: String? = nil

    public struct Step: Sendable, Equatable {
        /// Unique within the pipeline; what `depends_on` refers to.
        public var key: String
        /// Shown in logs and listings; defaults to the key.
        public var name: String
        /// Run in order via `/bin/sh -c`, stopping at the first failure.
        public var commands: [String]
        public var env: [String: String]
        /// Agent labels this step needs (all must match).
        public var agents: [String: String]
        /// Seconds; nil means no timeout.
        public var timeoutSeconds: Int?
        /// Seconds between SIGTERM and SIGKILL when the step is cancelled or times out.
        public var cancelGraceSeconds: Int
        public var dependsOn: [String]
        /// When a failed or lost attempt is retried automatically.
        public var retry: [RetryRule]
        /// Names of the secrets the step needs (`secrets:`), each a valid `SecretName`, in
        /// file order. Only names: values live in the coordinator's vault and reach the
        /// step in its lease, where the secret's scope allows.
        public var secrets: [String] = []
        /// Where `secrets:` is written, so a refusal at submission (a name no scope
        /// provides for this step) points at it like a parse error.
        public var secretsLocation: Location?
        /// The deployment environment the step belongs to (`environment:`), if any: it
        /// selects `environment:NAME` secrets, and who may submit it is checked per
        /// environment.
        public var environment: String?

        // MARK: The pipeline language (docs/pipeline.md)

        /// `if:`: evaluated at submission; false makes every job of the step `skipped`.
        public var condition: StepCondition? = nil
        /// `when:`: whether the step runs after its dependencies succeeded, failed, or either.
        public var when: RunWhen = .onSuccess
        /// `soft_fail:`: failures that do not fail the pipeline.
        public var softFail: SoftFail = .never
        /// `priority:`: higher is leased first; ties go to the job queued first.
        public var priority: Int = 0
        /// `concurrency:` as written (the group before interpolation); each job carries
        /// its own resolved copy.
        public var concurrency: ConcurrencyRule? = nil
        /// `matrix:` dimensions in file order, after `exclude`/`include`; nil without one.
        public var matrix: [[String: String]]? = nil
        /// `parallelism:`; nil without one.
        public var parallelism: Int? = nil
        /// The jobs the step expands into (at least one), in a stable order: matrix
        /// combinations in file order, each with its parallel copies.
        public var jobs: [Job] = []
        /// `block:`: an approval gate instead of commands (`commands` is empty and the
        /// step has exactly one job, which no agent ever runs).
        public var block: BlockStep? = nil
        /// `checkout:`: whether and how the agent checks out the source first.
        public var checkout: CheckoutOptions = .default
        /// `artifacts:`, `artifacts_when:`, `download:` and `cache:`; empty for none (and
        /// always for a block step).
        public var transfers = StepTransfers()
    }

    /// A 1-based place in the file.
    public struct Location: Sendable, Equatable {
        public var line: Int
        public var column: Int

        public init(line: Int, column: Int) {
            self.line = line
            self.column = column
        }
    }

    /// Every `environment:` named by a step: what the submit handler checks the submitter
    /// may deploy to before anything is stored.
    public var environments: Set<String> { Set(steps.compactMap(\.environment)) }
}

extension PipelineDefinition {
    /// The step keys its `download:` rules name that are not its own steps (nor in
    /// `existing`, the steps of the pipeline a file is uploaded into): steps of the
    /// pipeline it promotes, which the coordinator checks exist there.
    public func foreignDownloadSteps(existing: Set<String> = []) -> [String] {
        let own = Set(steps.map(\.key)).union(existing)
        var seen: Set<String> = []
        return steps.flatMap(\.transfers.downloads).map(\.step).filter { !own.contains($0) && seen.insert($0).inserted }
    }
}
