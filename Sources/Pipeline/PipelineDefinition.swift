/// A parsed, validated pipeline file: what `PipelineParser` produces and the store expands
/// into jobs. Only the first subset of the format (docs/pipeline.md) exists so far.
public struct PipelineDefinition: Sendable, Equatable {
    public var env: [String: String]
    public var steps: [Step]

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
    }
}
