import GantryPipeline
import GantryProtocol

/// The check at submission that every secret a step names will reach it: for each step,
/// each name must be held by a scope that applies to that step (its `environment:`, the
/// submission's repository, or `pipeline`). A pipeline that fails it is refused with
/// `422 invalid_pipeline` pointing at the step's `secrets:`, before anything is stored,
/// rather than running a deploy step that then fails half-way for want of a token.
///
/// It also refuses a submission whose `env` (`gantry run --env`) sets a name a step takes
/// as a secret: `env` is stored in clear, and which of the two would win is not something
/// a reader of the file should have to know.
enum SecretRequirements {
    static func check(_ definition: PipelineDefinition, request: API.SubmitPipeline, vault: SecretVault) throws(PipelineError) {
        let file = request.file ?? "pipeline.yml"
        let repository = request.repository ?? ""
        let submitted = request.env ?? [:]
        for step in definition.steps where !step.secrets.isEmpty {
            let location = step.secretsLocation
            func refuse(_ message: String) -> PipelineError {
                PipelineError(file: file, line: location?.line, column: location?.column, message: message)
            }
            if let clash = step.secrets.first(where: { submitted[$0] != nil }) {
                throw refuse(
                    "`\(clash)` is set by the submission's env (`--env`) and named in step `\(step.key)`'s `secrets`: "
                        + "a secret must come from the vault only, drop it from `--env`")
            }
            let (values, missing) = vault.resolve(step.secrets, repository: repository, environment: step.environment)
            let total = values.values.reduce(0) { $0 + $1.utf8.count }
            guard total <= SecretValueRule.maximumBytesPerStep else {
                throw refuse(
                    "step `\(step.key)`'s secrets hold \(total) bytes; agents accept at most 1 MiB of secrets per step: "
                        + "split the step or keep large material in a file the step fetches")
            }
            if let name = missing.first {
                let scopes = SecretScope.precedence(repository: repository, environment: step.environment)
                throw refuse(
                    "step `\(step.key)` needs the secret `\(name)`, which is not set for any scope that applies to it "
                        + "(\(scopes.map(\.description).joined(separator: ", "))): set it with "
                        + "`gantry secret set \(name) --scope \(scopes[0])`")
            }
        }
    }
}
