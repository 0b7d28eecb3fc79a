import GantryProtocol
import Hummingbird

/// How a submission's refusals are answered, the same for a new pipeline and a rebuild:
/// a deploy the caller may not make is 403, a placement rule or an invalid file 422 with
/// the file's line and column. Anything else is not a refusal and propagates.
enum SubmissionRefusal {
    static func response(for error: any Error, audit: AuditNote) -> Response? {
        switch error {
        case let refusal as DeployRefusal:
            audit.add("reason", refusal.kind == .forbidden ? "deploy not permitted" : "deploy step on untrusted agents")
            return refusal.kind == .forbidden
                ? APIResponses.error(.forbidden, code: "forbidden", message: refusal.description)
                : APIResponses.error(.unprocessableContent, code: "invalid_pipeline", message: refusal.description)
        case let error as PipelineError:
            return APIResponses.error(
                .unprocessableContent, code: "invalid_pipeline", message: error.message, file: error.file, line: error.line,
                column: error.column)
        default:
            return nil
        }
    }
}
