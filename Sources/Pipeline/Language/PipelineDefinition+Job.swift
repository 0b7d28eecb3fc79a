extension PipelineDefinition {
    /// One job of a step after `matrix:` and `parallelism:` expansion: what becomes one job
    /// row. A step without either has exactly one, equal to the step itself. Every string
    /// is already interpolated (`{{matrix.NAME}}`) and validated against the same limits
    /// as a step's.
    public struct Job: Sendable, Equatable {
        /// The step's name with the job's matrix values and parallel index, such as
        /// `test (linux, 6.1)` or `shard 2/4`.
        public var name: String
        public var commands: [String]
        /// The step's own `env`, interpolated, plus `GANTRY_PARALLEL_JOB` (0-based) and
        /// `GANTRY_PARALLEL_JOB_COUNT` for a `parallelism:` step. The pipeline-level `env`
        /// is merged in when rows are built.
        public var env: [String: String]
        public var agents: [String: String]
        /// This job's matrix values by dimension name; empty without `matrix:`.
        public var matrix: [String: String]
        /// 0-based index among `parallelism:` copies; nil without it.
        public var parallelIndex: Int?
        /// The step's `concurrency:` with the group interpolated for this job.
        public var concurrency: ConcurrencyRule?

        public init(
            name: String, commands: [String], env: [String: String], agents: [String: String],
            matrix: [String: String] = [:], parallelIndex: Int? = nil, concurrency: ConcurrencyRule? = nil
        ) {
            self.name = name
            self.commands = commands
            self.env = env
            self.agents = agents
            self.matrix = matrix
            self.parallelIndex = parallelIndex
            self.concurrency = concurrency
        }
    }
}
