/// The identity a pipeline's jobs act for when they do something on their own authority
/// that a person's permission governs: uploading steps that deploy, saving the default
/// branch's cache. A job token is no person; the pipeline records who submitted it
/// (`StoredPipeline.submittedBy`), and that identity's roles *now* decide.
public enum PipelineSubmitter {
    /// The submitter as a principal, and how a refusal names it. A pipeline that records
    /// no submitter (older than schema v12, or started by no person), or whose submitter
    /// is disabled or gone, stands for an identity without any role.
    public static func principal(
        of pipeline: StoredPipeline, identities: any IdentityStore
    ) throws -> (principal: Principal, who: String) {
        if let name = pipeline.submittedBy, let identity = try identities.identity(named: name), identity.disabledAt == nil {
            return (
                Principal(identity: name, tokenID: "submitter", bindings: identity.bindings),
                "the identity that submitted pipeline \(pipeline.id), \(name)"
            )
        }
        let who =
            pipeline.submittedBy.map { "the identity that submitted pipeline \(pipeline.id), \($0), which is disabled or gone" }
            ?? "pipeline \(pipeline.id)'s submitter, which is not recorded (an older pipeline, or one no person started)"
        return (Principal(identity: pipeline.submittedBy ?? "nobody", tokenID: "submitter", bindings: []), who)
    }
}
