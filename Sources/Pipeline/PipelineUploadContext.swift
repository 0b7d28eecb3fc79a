/// What the parser must know to validate a file uploaded into a running pipeline
/// (`gantry pipeline upload`) rather than submitted as a new one: the steps already there.
///
/// An uploaded file is parsed exactly like a submitted one, with four differences:
/// - its step keys must not be keys of the pipeline already (nor of each other);
/// - its `depends_on` may name the pipeline's existing steps, except those that run
///   after the uploading step (`later`): the uploaded steps are inserted before those, so
///   depending on one would be a cycle;
/// - the pipeline's jobs count towards `PipelineLimits.maximumJobs`, so uploads cannot
///   grow a pipeline past what one submission may hold;
/// - a step without `key:` gets `defaultKeyPrefix` before its default key (`upload-2-1a2b3c4d.step-1`),
///   so a second upload's keyless steps do not collide with the first's.
public struct PipelineUploadContext: Sendable, Equatable {
    /// Every step key of the pipeline as it stands.
    public var existingKeys: Set<String>
    /// How many jobs the pipeline has.
    public var existingJobs: Int
    /// Existing steps that wait, directly or not, for the uploading step.
    public var later: Set<String>
    /// Put before `step-N` / `block-N` for steps without a `key:`.
    public var defaultKeyPrefix: String

    public init(existingKeys: Set<String>, existingJobs: Int, later: Set<String> = [], defaultKeyPrefix: String = "") {
        self.existingKeys = existingKeys
        self.existingJobs = existingJobs
        self.later = later
        self.defaultKeyPrefix = defaultKeyPrefix
    }
}
