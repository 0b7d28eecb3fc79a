/// The conventional bootstrap pipeline: one step that uploads the pipeline the
/// repository holds at the commit being built (`.gantry/pipeline.yml`), so the pipeline's
/// definition lives, is reviewed and is versioned with the code it builds.
///
/// `gantry run --repository URL --commit SHA` without a file submits it, and so will a
/// webhook (issue 15): one definition, here, so both start builds the same way. The step
/// runs in the checked-out work dir; `gantry` must be on the agent's `PATH`.
public enum PipelineBootstrap {
    /// The pipeline file in the repository, relative to the checkout.
    public static let repositoryFile = ".gantry/pipeline.yml"
    /// The bootstrap step's key.
    public static let stepKey = "pipeline-upload"
    /// The name the bootstrap pipeline's file is stored and reported under.
    public static let file = "gantry-bootstrap.yml"

    /// The bootstrap pipeline's YAML.
    public static let yaml = yaml(uploading: repositoryFile)

    /// The bootstrap pipeline for another file of the repository (a project's
    /// `--pipeline`). `file` must be a plain relative path (`ProjectSettings` checks):
    /// it is written into the step's command as it is.
    public static func yaml(uploading file: String) -> String {
        """
        steps:
          - key: \(stepKey)
            label: "upload \(file)"
            command: gantry pipeline upload \(file)
        """
    }
}
