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
        public var dependsOn: [String]
    }
}

/// What is wrong with a pipeline file, and where.
public struct PipelineError: Error, Equatable, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int?
    public var column: Int?
    public var message: String

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        return "\(location): \(message)"
    }
}
